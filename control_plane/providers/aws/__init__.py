"""AWS providers: enterprise silos (a tenant's own key, bucket, RDS instance, EKS cluster, DNS record)
and professional pools (a database, bucket prefix and DNS record in a cell's shared resources).

Every client is built from the standard AWS configuration only (region, credentials and
``AWS_ENDPOINT_URL`` are read by boto3 itself). Names and tags come from :mod:`infra.conventions`.
"""
