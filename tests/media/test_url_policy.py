from __future__ import annotations

import ipaddress

import pytest

from loupe.errors import ImageFetchFailed, ImageUrlForbidden
from loupe.media.limits import ImageLimits
from loupe.media.url_policy import UrlPolicy

POLICY = UrlPolicy(ImageLimits())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("file:///etc/passwd", "not file"),
        ("ftp://example.com/a.png", "not ftp"),
        ("gopher://example.com/", "not gopher"),
        ("javascript:alert(1)", "not javascript"),
        ("example.com/a.png", "not no scheme"),
        ("http://user:pw@example.com/a.png", "credentials"),
        ("http://user@example.com/a.png", "credentials"),
        ("http:\\\\127.0.0.1\\x", "backslash"),
        ("http://example.com\\@127.0.0.1/", "backslash"),
        ("http:/example.com/a.png", "no host"),
        ("http:///a.png", "no host"),
        ("http://:80/", "no host"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com/\x00", "control"),
        ("http://%31%32%37.0.0.1/", "malformed IP"),
        ("http://%6c%6f%63%61%6c%68%6f%73%74/", "not a valid host name"),
        ("http://example.com:99999/", "out of range"),
        ("http://example.com:0/", "out of range"),
        ("http://1.2.3.4.5/", "malformed IP"),
        ("http://127.1/", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://0x7f000001/", "loopback"),
        ("http://0177.0.0.1/", "malformed"),  # httpx refuses the form itself
        ("http://0177.1/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "IPv4-mapped"),
        ("http://[::1]/", "loopback"),
        ("http://[::]/", "unspecified"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://10.0.0.1/", "private"),
        ("http://100.64.0.1/", "carrier-grade NAT"),
        ("http://localhost/", "local machine"),
        ("http://LOCALHOST./", "local machine"),
        ("http://api.localhost/", "local machine"),
        ("http://example.com/" + "a" * 9000, "longer than"),
    ],
)
def test_refused_urls(url: str, message: str) -> None:
    with pytest.raises(ImageUrlForbidden, match=message):
        POLICY.check_url(url)


def test_a_public_name() -> None:
    destination = POLICY.check_url("HTTPS://Images.Example.COM./a.png?x=1#frag")
    assert destination.host == "images.example.com"
    assert destination.address is None
    assert destination.url.scheme == "https"
    assert destination.host_header == "images.example.com"


def test_an_ip_host_is_canonical() -> None:
    destination = POLICY.check_url("http://93.184.216.34:8080/a.png")
    assert destination.address == ipaddress.ip_address("93.184.216.34")
    assert destination.host_header == "93.184.216.34:8080"


def test_idna_host() -> None:
    assert POLICY.check_url("http://bücher.example/a.png").host == "xn--bcher-kva.example"


def test_private_host_opt_in_names_the_host() -> None:
    policy = UrlPolicy(ImageLimits(allowed_private_hosts=("127.0.0.1", "Intranet.Example")))
    assert policy.check_url("http://127.0.0.1:8000/a.png").private_ok
    assert policy.check_url("http://127.1:8000/a.png").private_ok  # the same address
    assert policy.check_url("http://intranet.example/a.png").private_ok
    with pytest.raises(ImageUrlForbidden):
        policy.check_url("http://127.0.0.2/a.png")
    with pytest.raises(ImageUrlForbidden):
        policy.check_url("http://localhost/a.png")


def test_domain_allow_list() -> None:
    policy = UrlPolicy(ImageLimits(allowed_domains=("example.com",)))
    assert policy.check_url("https://example.com/a.png").host == "example.com"
    assert policy.check_url("https://cdn.images.example.com/a.png").host == "cdn.images.example.com"
    for url in (
        "https://example.org/a.png",
        "https://notexample.com/a.png",
        "https://93.184.216.34/",
    ):
        with pytest.raises(ImageUrlForbidden, match="allowed image domains"):
            policy.check_url(url)


def test_addresses_must_all_be_public() -> None:
    destination = POLICY.check_url("http://images.example/a.png")
    public, private = ipaddress.ip_address("93.184.216.34"), ipaddress.ip_address("10.0.0.1")
    assert POLICY.check_addresses(destination, [public]) == public
    with pytest.raises(ImageUrlForbidden, match="resolves to a private address"):
        POLICY.check_addresses(destination, [public, private])
    with pytest.raises(ImageFetchFailed):
        POLICY.check_addresses(destination, [])


def test_opted_in_host_may_resolve_privately() -> None:
    policy = UrlPolicy(ImageLimits(allowed_private_hosts=("intranet.example",)))
    destination = policy.check_url("http://intranet.example/a.png")
    private = ipaddress.ip_address("10.0.0.1")
    assert policy.check_addresses(destination, [private]) == private
