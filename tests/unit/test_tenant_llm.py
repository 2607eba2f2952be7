"""A tenant's own LLM URL: http(s) only, and within the allowed hosts when they are set."""

from __future__ import annotations

import pytest

from ragserve.errors import InvalidQuery
from ragserve.tenant_llm import valid_base_url


@pytest.mark.parametrize("url", ["ftp://x/v1", "not a url", "http://", "file:///etc/passwd"])
def test_only_http_urls_are_accepted(url: str) -> None:
    """Anything but an http(s) URL with a host is refused."""
    with pytest.raises(InvalidQuery, match="http"):
        valid_base_url(url)


def test_any_host_is_accepted_without_an_allow_list() -> None:
    """With no allowed hosts configured, any http(s) host passes (trailing slash dropped)."""
    assert valid_base_url(" http://10.0.0.5:8080/v1/ ") == "http://10.0.0.5:8080/v1"


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://api.openai.com/v1", True),
        ("https://eu.llm.example.com/v1", True),
        ("https://llm.example.com.evil.net/v1", False),
        ("http://127.0.0.1:6379", False),
        ("http://169.254.169.254/latest", False),
    ],
)
def test_an_allow_list_limits_the_hosts(url: str, allowed: bool) -> None:
    """Exact hosts and '.suffix' subdomains pass; everything else is refused."""
    hosts = ["api.openai.com", ".llm.example.com"]
    if allowed:
        assert valid_base_url(url, hosts) == url
    else:
        with pytest.raises(InvalidQuery, match="not allowed"):
            valid_base_url(url, hosts)
