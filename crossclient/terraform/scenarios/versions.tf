# Shared by every scenario. The suite installs the provider from a local
# filesystem mirror (no registry is reached), which holds exactly this version.
terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.100.0"
    }
  }
}
