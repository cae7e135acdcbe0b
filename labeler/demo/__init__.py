"""The offline demo: a simulated judge server, demo pairs and simulated reviewers."""
