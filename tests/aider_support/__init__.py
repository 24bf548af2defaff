"""Real Aider in the e2e tests: install, a private HOME, a scripted model API."""
