"""What runs against a lab that is up: nodes, programs, captures, and the evidence they give."""
