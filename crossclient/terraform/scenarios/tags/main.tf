# A cluster whose tags change. The suite applies this configuration, then
# plans and applies it with -var-file=step2.tfvars: one tag changes its
# value, one goes, one comes. That must be an in-place update (TagResource
# and UntagResource), never a replacement.

variable "tags" {
  type = map(string)
  default = {
    Name = "terraform-tags"
    env  = "dev"
    team = "platform"
  }
}

resource "aws_cloudhsm_v2_cluster" "this" {
  hsm_type   = "hsm2m.medium"
  subnet_ids = ["subnet-07a9500000000000a"]
  tags       = var.tags
}

output "cluster_id" {
  value = aws_cloudhsm_v2_cluster.this.cluster_id
}

output "tags_all" {
  value = aws_cloudhsm_v2_cluster.this.tags_all
}
