output "eks_cluster_name" {
  value       = aws_eks_cluster.main.name
  description = "kubectl: aws eks update-kubeconfig --name <this>"
}

output "postgres_endpoint" {
  value       = aws_db_instance.main.address
  description = "Host for DATABASE_URL (the password is in Secrets Manager: manage_master_user_password)."
}

output "redis_endpoint" {
  value       = aws_elasticache_replication_group.main.primary_endpoint_address
  description = "Host for REDIS_URL (rediss://, the auth token is the random_password in state)."
}
