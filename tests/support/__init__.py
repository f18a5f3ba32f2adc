"""Helpers the tests share: private Redis servers and worker processes."""
