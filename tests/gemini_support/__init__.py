"""Support for the real Gemini CLI e2e tests: install lookup and a scripted Gemini API."""
