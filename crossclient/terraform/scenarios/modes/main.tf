# Two hsm2m.medium clusters, one in FIPS mode and one in NON_FIPS mode (the
# mode argument, which the provider sends as CreateCluster's Mode).

resource "aws_cloudhsm_v2_cluster" "fips" {
  hsm_type   = "hsm2m.medium"
  mode       = "FIPS"
  subnet_ids = ["subnet-0d0de50000000000a", "subnet-0d0de50000000000b"]
}

resource "aws_cloudhsm_v2_cluster" "non_fips" {
  hsm_type   = "hsm2m.medium"
  mode       = "NON_FIPS"
  subnet_ids = ["subnet-0d0de50000000001a", "subnet-0d0de50000000001b"]
}

output "fips_cluster_id" {
  value = aws_cloudhsm_v2_cluster.fips.cluster_id
}

output "fips_mode" {
  value = aws_cloudhsm_v2_cluster.fips.mode
}

output "non_fips_cluster_id" {
  value = aws_cloudhsm_v2_cluster.non_fips.cluster_id
}

output "non_fips_mode" {
  value = aws_cloudhsm_v2_cluster.non_fips.mode
}
