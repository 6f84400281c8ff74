variable "region" {
  type        = string
  default     = "eu-central-1"
  description = "AWS region."
}

variable "name" {
  type        = string
  default     = "kk99"
  description = "Name prefix of every resource."
}

variable "vpc_cidr" {
  type        = string
  default     = "10.40.0.0/16"
  description = "CIDR of the VPC."
}

variable "kubernetes_version" {
  type        = string
  default     = "1.33"
  description = "EKS control plane version (deploy/k8s is validated against 1.33)."
}

variable "node_instance_type" {
  type        = string
  default     = "m7i.xlarge"
  description = "Worker node type: engines want fast single cores."
}

variable "node_count" {
  type        = number
  default     = 3
  description = "Nodes: owner and standby engines are kept on different nodes."
}

variable "db_instance_class" {
  type        = string
  default     = "db.m7g.large"
  description = "RDS instance class."
}

variable "db_allocated_storage" {
  type        = number
  default     = 200
  description = "RDS storage in GiB."
}

variable "redis_node_type" {
  type        = string
  default     = "cache.m7g.large"
  description = "ElastiCache node type."
}

variable "admin_cidrs" {
  type        = list(string)
  default     = []
  description = "CIDRs allowed to reach the EKS public API endpoint (empty: private only)."
}
