"""`accord deploy render`: what a production deployment needs, generated from the contracts.

`services.py` says which service publishes to which topic and consumes which queue (from each
service's AsyncAPI application document); `cloudformation.py` renders the bus topology that
`accord provision` applies as a CloudFormation template, with least-privilege IAM policies and
alarms; `envtable.py` renders the services' environment variables from their settings classes;
`render.py` dispatches by `--format` and checks a committed rendering for drift.
"""
