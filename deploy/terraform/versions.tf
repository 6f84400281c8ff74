# NOT APPLIED — see README.md. Parsed and checked by tests/ops/test_terraform.py.
terraform {
  required_version = ">= 1.6.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "aws" {
  region = var.region
  default_tags {
    tags = {
      Project   = "kk99"
      ManagedBy = "terraform"
    }
  }
}
