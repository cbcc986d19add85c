tags = {
  Name  = "terraform-tags-renamed"
  team  = "platform"
  owner = "sre"
}
