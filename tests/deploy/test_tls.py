"""TLS in production mode (``devnet = false``): a gateway serving HTTPS relays over HTTPS to
relayers whose staked endpoint is ``https://``, verifying their certificates against
``[relay] ca_file``; a relayer whose certificate comes from another CA is refused with a clear
error (logged once) and its reads fail over. The CAs and certificates are made here."""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.gateway_net import Net, start_gateway_proc, start_net

pytestmark = pytest.mark.slow  # starts processes (anvil, relayers, a gateway)

LOOPBACK = ipaddress.ip_address("127.0.0.1")


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


class Authority:
    """A certificate authority of the test's own, issuing server certificates for 127.0.0.1."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = directory / f"{name}.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, name: str) -> tuple[Path, Path]:
        """(certificate, key) files of a server certificate for 127.0.0.1, key file 0600."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        ski = x509.SubjectKeyIdentifier.from_public_key(self.key.public_key())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(LOOPBACK)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_file, key_file = self.directory / f"{name}.crt", self.directory / f"{name}.key"
        cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_file.touch(mode=0o600)
        key_file.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return cert_file, key_file


@pytest.fixture(scope="module")
def tls_net(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Net, Authority]]:
    tmp = tmp_path_factory.mktemp("tls")
    (tmp / "pki").mkdir()
    ours, theirs = Authority(tmp / "pki", "relaynet-test-ca"), Authority(tmp / "pki", "other-ca")
    # relayer 0 and 1: certificates of our CA; relayer 2: of another CA
    certs = [ours.issue("relayer0"), ours.issue("relayer1"), theirs.issue("relayer2")]
    net = start_net(tmp, relayers=3, start_gateway=False, relayer_tls=list(certs))
    try:
        gw_cert, gw_key = ours.issue("gateway")
        start_gateway_proc(
            net,
            devnet=False,
            tables={
                "gateway": {
                    "allow_networks": ["127.0.0.0/8"],
                    "tls_cert": str(gw_cert),
                    "tls_key": str(gw_key),
                },
                "relay": {"ca_file": str(ours.ca_file)},
            },
        )
        yield net, ours
    finally:
        net.stop()


def _read(url: str, n: int, context: ssl.SSLContext) -> dict[str, object]:
    body = {
        "jsonrpc": "2.0",
        "id": n,
        "method": "eth_getBalance",
        "params": ["0x" + f"{n + 0x1000:040x}", "latest"],
    }
    req = urllib.request.Request(  # noqa: S310 - our loopback gateway
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30, context=context) as resp:  # noqa: S310
        answer: dict[str, object] = json.loads(resp.read())
        return answer


def test_relays_go_over_https_and_an_untrusted_relayer_is_refused(
    tls_net: tuple[Net, Authority],
) -> None:
    net, ca = tls_net
    gateway = net.gateway
    assert gateway is not None
    url = net.rpc_url
    assert url.startswith("https://127.0.0.1:")
    assert all(f.relay_url.startswith("https://") for f in net.relayer_files)

    # the client verifies the gateway's certificate against the test CA
    client = ssl.create_default_context(cafile=str(ca.ca_file))
    answers = [_read(url, n, client) for n in range(30)]
    assert all(a.get("result") == "0x0" for a in answers), answers[:3]
    # … and a client without the test CA refuses the gateway's certificate
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        _read(url, 99, ssl.create_default_context())

    good = {"0x" + f.supplier.hex() for f in net.relayer_files[:2]}
    bad = "0x" + net.relayer_files[2].supplier.hex()
    refused = f"relayer {bad} at https://127.0.0.1:"
    # the untrusted relayer is tried — by a read, or first by the gateway's prober, which then
    # keeps reads away from it — once a session draws it: sessions move on until one does
    log = gateway.log_path.read_text()
    for round_ in range(8):  # bounded: with 3 suppliers most sessions hold all three
        if refused in log:
            break
        net.mine_settlement(net.network.deployment.shape.L)
        answers = [_read(url, 100 + 10 * round_ + n, client) for n in range(10)]
        assert all(a.get("result") == "0x0" for a in answers), answers[:3]
        log = gateway.log_path.read_text()
    # the relays: answered only by the relayers whose certificate verified
    metrics = urllib.request.urlopen(gateway.metrics_url, timeout=5).read().decode()  # noqa: S310
    # (a supplier's series may be present at 0: the gateway makes its cells when it first
    # tries it)
    success = {s: n for s, n in _relays(metrics, "success").items() if n > 0}
    assert sum(success.values()) >= 30 and set(success) <= good, success
    assert bad not in success
    assert refused in log, log[-2000:]
    assert "TLS certificate does not verify" in log and log.count(bad + " at") == 1


def _relays(metrics: str, outcome: str) -> dict[str, float]:
    """relaynet_gateway_relays_total by supplier, for one outcome."""
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("relaynet_gateway_relays_total{") and f'outcome="{outcome}"' in line:
            supplier = line.split('supplier="', 1)[1].split('"', 1)[0]
            out[supplier] = out.get(supplier, 0.0) + float(line.rsplit(" ", 1)[1])
    return out


async def test_a_subscription_goes_over_wss_end_to_end(tls_net: tuple[Net, Authority]) -> None:
    """The client's WebSocket to the gateway is wss://, and so are the gateway's upstream
    streams to the relayers (staked https://, verified against the test CA)."""
    import aiohttp

    net, ca = tls_net
    assert net.gateway is not None
    url = net.gateway.ws_url("devnet", net.key)
    assert url.startswith("wss://")
    client = ssl.create_default_context(cafile=str(ca.ca_file))
    async with aiohttp.ClientSession() as http, http.ws_connect(url, ssl=client) as ws:
        await ws.send_str('{"jsonrpc":"2.0","id":1,"method":"eth_subscribe","params":["newHeads"]}')
        answer = json.loads((await ws.receive(timeout=30)).data)
        assert str(answer.get("result", "")).startswith("0x"), answer
        heads = []
        for _ in range(20):  # bounded: a new block on the backend until one head arrives
            net.backend.rpc("evm_mine")
            try:
                msg = await ws.receive(timeout=3)
            except TimeoutError:
                continue
            heads.append(json.loads(msg.data)["params"]["result"])
            break
        assert heads and heads[0]["number"].startswith("0x"), heads
