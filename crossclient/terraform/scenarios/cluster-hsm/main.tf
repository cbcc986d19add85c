# An hsm1.medium cluster (its mode left to the service, which answers FIPS),
# its first HSM, and the aws_cloudhsm_v2_cluster data source, read once the
# HSM exists so that the cluster's CSR is there.
#
# The subnets are new to the server, which learns them: one VPC, one
# Availability Zone each. The HSM names its subnet; the provider finds the
# zone in the cluster's SubnetMapping.

resource "aws_cloudhsm_v2_cluster" "this" {
  hsm_type   = "hsm1.medium"
  subnet_ids = ["subnet-0c1a5e0000000000a", "subnet-0c1a5e0000000000b"]

  tags = {
    Name = "terraform-cluster-hsm"
  }
}

resource "aws_cloudhsm_v2_hsm" "first" {
  cluster_id = aws_cloudhsm_v2_cluster.this.cluster_id
  subnet_id  = "subnet-0c1a5e0000000000a"
}

data "aws_cloudhsm_v2_cluster" "this" {
  cluster_id = aws_cloudhsm_v2_cluster.this.cluster_id
  depends_on = [aws_cloudhsm_v2_hsm.first]
}

output "cluster_id" {
  value = aws_cloudhsm_v2_cluster.this.cluster_id
}

output "mode" {
  value = aws_cloudhsm_v2_cluster.this.mode
}

output "vpc_id" {
  value = aws_cloudhsm_v2_cluster.this.vpc_id
}

output "security_group_id" {
  value = aws_cloudhsm_v2_cluster.this.security_group_id
}

output "hsm_id" {
  value = aws_cloudhsm_v2_hsm.first.hsm_id
}

output "hsm_state" {
  value = aws_cloudhsm_v2_hsm.first.hsm_state
}

output "hsm_eni_id" {
  value = aws_cloudhsm_v2_hsm.first.hsm_eni_id
}

output "hsm_ip_address" {
  value = aws_cloudhsm_v2_hsm.first.ip_address
}

output "hsm_availability_zone" {
  value = aws_cloudhsm_v2_hsm.first.availability_zone
}

output "hsm_subnet_id" {
  value = aws_cloudhsm_v2_hsm.first.subnet_id
}

output "data_cluster_state" {
  value = data.aws_cloudhsm_v2_cluster.this.cluster_state
}

output "data_vpc_id" {
  value = data.aws_cloudhsm_v2_cluster.this.vpc_id
}

output "data_security_group_id" {
  value = data.aws_cloudhsm_v2_cluster.this.security_group_id
}

output "data_subnet_ids" {
  value = data.aws_cloudhsm_v2_cluster.this.subnet_ids
}

output "data_cluster_csr" {
  value = data.aws_cloudhsm_v2_cluster.this.cluster_certificates[0].cluster_csr
}
