"""The adapter's port to the Kubernetes API: client, resource discovery, object label index."""
