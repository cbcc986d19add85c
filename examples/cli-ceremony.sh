#!/usr/bin/env bash
# The CloudHSM cluster ceremony with the AWS CLI and openssl, against
# cloudhsm-local, step by step as the AWS CloudHSM User Guide describes it:
# create a cluster, create its first HSM, download the CSR, verify the HSM's
# identity (its certificate chains to the AWS and the manufacturer roots),
# create your CA, sign the CSR, initialize the cluster, wait until ACTIVE.
#
#   go run ./cmd/cloudhsm-local --in-memory &     # or any running server
#   bash examples/cli-ceremony.sh
#
# CLOUDHSM_ENDPOINT (default http://127.0.0.1:4599) is the server. Any
# credentials work; a 12-digit access key id is the account.
set -euo pipefail

ENDPOINT="${CLOUDHSM_ENDPOINT:-http://127.0.0.1:4599}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-123456789012}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-cloudhsm-local}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}"
export CA_PASSPHRASE="${CA_PASSPHRASE:-example passphrase}"

hsm() { aws cloudhsmv2 --endpoint-url "$ENDPOINT" "$@"; }

# wait_for QUERY WANT [TRIES]: polls DescribeClusters until QUERY answers
# WANT (an extended regular expression such as 'INITIALIZED|ACTIVE').
wait_for() {
  local got=""
  for _ in $(seq 1 "${3:-120}"); do
    got="$(hsm describe-clusters --filters "clusterIds=$CLUSTER_ID" --query "$1" --output text)"
    [[ "$got" =~ ^($2)$ ]] && return 0
    sleep 0.5
  done
  echo "timed out waiting for $1 = $2 (last: $got)" >&2
  return 1
}

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

echo "== 1. Create a cluster in two subnets (cloudhsm-local learns made-up subnet ids)"
CLUSTER_ID="$(hsm create-cluster --hsm-type hsm2m.medium \
  --subnet-ids subnet-0123456789abcdef0 subnet-0123456789abcdef1 \
  --query Cluster.ClusterId --output text)"
echo "cluster $CLUSTER_ID"
wait_for 'Clusters[0].State' UNINITIALIZED
echo "cluster $CLUSTER_ID is UNINITIALIZED"

echo "== 2. Create the first HSM in one of the cluster's Availability Zones"
AZ="$(hsm describe-clusters --filters "clusterIds=$CLUSTER_ID" --query 'sort(keys(Clusters[0].SubnetMapping))[0]' --output text)"
hsm create-hsm --cluster-id "$CLUSTER_ID" --availability-zone "$AZ" --query 'Hsm.[HsmId, State]' --output text
wait_for 'Clusters[0].Hsms[0].State' ACTIVE
echo "HSM in $AZ is ACTIVE"

echo "== 3. Download the cluster CSR and the HSM's certificates"
hsm describe-clusters --filters "clusterIds=$CLUSTER_ID" --output text \
  --query 'Clusters[].Certificates.ClusterCsr' >"${CLUSTER_ID}_ClusterCsr.csr"
hsm describe-clusters --filters "clusterIds=$CLUSTER_ID" --output text \
  --query 'Clusters[].Certificates.HsmCertificate' >HsmCertificate.crt
hsm describe-clusters --filters "clusterIds=$CLUSTER_ID" --output text \
  --query 'Clusters[].Certificates.AwsHardwareCertificate' >AWS_HardwareCertificate.crt
hsm describe-clusters --filters "clusterIds=$CLUSTER_ID" --output text \
  --query 'Clusters[].Certificates.ManufacturerHardwareCertificate' >ManufacturerHardwareCertificate.crt
openssl req -in "${CLUSTER_ID}_ClusterCsr.csr" -noout -subject

echo "== 4. Verify the HSM's identity"
# AWS publishes its root and the manufacturer's; cloudhsm-local serves its
# simulated ones on the admin API.
curl -fsS "$ENDPOINT/_cloudhsm-local/roots/aws.pem" >AWS_CloudHSM_Root-G1.crt
curl -fsS "$ENDPOINT/_cloudhsm-local/roots/manufacturer.pem" >liquid_security_certificate.crt
cat AWS_CloudHSM_Root-G1.crt AWS_HardwareCertificate.crt >AWS_chain.crt
openssl verify -CAfile AWS_chain.crt HsmCertificate.crt
cat liquid_security_certificate.crt ManufacturerHardwareCertificate.crt >manufacturer_chain.crt
openssl verify -CAfile manufacturer_chain.crt HsmCertificate.crt
# The CSR carries the HSM certificate's public key.
openssl x509 -in HsmCertificate.crt -pubkey -noout >HsmCertificate.pub
openssl req -in "${CLUSTER_ID}_ClusterCsr.csr" -pubkey -noout >ClusterCsr.pub
diff HsmCertificate.pub ClusterCsr.pub && echo "the CSR's public key is the HSM certificate's"

echo "== 5. Create your CA (its private key stays with you) and sign the CSR"
openssl genrsa -aes256 -passout env:CA_PASSPHRASE -out customerCA.key 2048 2>/dev/null
openssl req -new -x509 -days 3652 -key customerCA.key -passin env:CA_PASSPHRASE -out customerCA.crt \
  -subj "/C=US/ST=WA/L=Seattle/O=Example Org/CN=Example Org Root CA"
openssl x509 -req -days 3652 -in "${CLUSTER_ID}_ClusterCsr.csr" \
  -CA customerCA.crt -CAkey customerCA.key -passin env:CA_PASSPHRASE -CAcreateserial \
  -out "${CLUSTER_ID}_CustomerHsmCertificate.crt"

echo "== 6. Initialize the cluster"
hsm initialize-cluster --cluster-id "$CLUSTER_ID" \
  --signed-cert "file://${CLUSTER_ID}_CustomerHsmCertificate.crt" \
  --trust-anchor file://customerCA.crt
# INITIALIZED lasts half a second in cloudhsm-local's fast profile (a few
# minutes on AWS): a slow poller may see ACTIVE already.
wait_for 'Clusters[0].State' 'INITIALIZED|ACTIVE'
echo "cluster $CLUSTER_ID is initialized"
hsm describe-clusters --filters "clusterIds=$CLUSTER_ID" --output text \
  --query 'Clusters[].Certificates.ClusterCertificate' >"${CLUSTER_ID}_ClusterCertificate.crt"
openssl verify -CAfile customerCA.crt "${CLUSTER_ID}_ClusterCertificate.crt"

echo "== 7. Activate"
# On AWS you activate on the HSM with CloudHSM CLI (cluster activate).
# cloudhsm-local activates by itself (--activation auto, the default); with
# --activation manual the admin API stands in for the HSM.
if ! wait_for 'Clusters[0].State' ACTIVE 10 2>/dev/null; then
  ACCOUNT=123456789012
  [[ "$AWS_ACCESS_KEY_ID" =~ ^[0-9]{12}$ ]] && ACCOUNT="$AWS_ACCESS_KEY_ID"
  curl -fsS -X POST "$ENDPOINT/_cloudhsm-local/clusters/$CLUSTER_ID/activate?account=$ACCOUNT&region=$AWS_DEFAULT_REGION"
  echo
  wait_for 'Clusters[0].State' ACTIVE
fi
echo "cluster $CLUSTER_ID is ACTIVE"
