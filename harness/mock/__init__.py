"""`accord mock`: stand-ins for the services built from their contracts alone."""
