# A cluster created outside Terraform. The suite creates it with
# aws-sdk-go-v2 with exactly these arguments (createOutside in
# scenarios_test.go), then runs
#
#   terraform import aws_cloudhsm_v2_cluster.imported <its cluster id>
#
# after which a plan must find nothing to change. The mode is not set here:
# it is read from the service.

resource "aws_cloudhsm_v2_cluster" "imported" {
  hsm_type   = "hsm2m.medium"
  subnet_ids = ["subnet-01a90000000000000", "subnet-01a90000000000001"]

  tags = {
    Name      = "created-outside-terraform"
    ManagedBy = "aws-sdk-go-v2"
  }
}

output "cluster_id" {
  value = aws_cloudhsm_v2_cluster.imported.cluster_id
}

output "mode" {
  value = aws_cloudhsm_v2_cluster.imported.mode
}
