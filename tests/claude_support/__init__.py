"""Test support for driving the real Claude Code CLI against a scripted model API.

- :mod:`tests.claude_support.fake_api` -- :class:`FakeAnthropic`, a local Messages API
  server that answers with scripted tool calls (``SCENARIO:...`` prompts) and logs
  every request and the usage it sent.
- :mod:`tests.claude_support.cli` -- install/find the ``claude`` binary, prepare a
  private HOME and the environment the CLI needs, price usage like the CLI does.

See ``NOTES.md`` next to this file for what was learned about the real CLI.
"""
