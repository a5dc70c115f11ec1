"""The node agent (kybern's kubelet) and the container runtimes it drives."""
