"""tablehub's benchmark harness (issue #7): ``python -m bench``; see bench/README.md."""
