# Shared by every scenario: the provider block of the README ("Pointing
# clients at it"), character for character (a test compares them). The suite
# replaces http://127.0.0.1:4599 with the endpoint of the scenario's server.
provider "aws" {
  region     = "us-east-1"
  access_key = "111122223333" # a 12-digit key id is the account
  secret_key = "test"
  endpoints {
    cloudhsmv2 = "http://127.0.0.1:4599"
  }
  skip_credentials_validation = true
  skip_metadata_api_check     = true
  skip_requesting_account_id  = true
}
