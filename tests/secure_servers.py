"""Redis servers that guard themselves, for tests of TLS, passwords and ACL users.

``make_tls_files`` makes a throwaway CA, a server certificate (for 127.0.0.1
and localhost) and a client certificate with ``openssl`` in a directory of
the test's. ``GuardedRedis`` runs a ``redis-server`` with TLS only (``--port
0``), a ``requirepass``, or both, and builds URLs for it with every part
percent-encoded as a URL must be; ``add_user`` makes ACL users (with the
commands a test wants to refuse them).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import redis

from tests.redis_server import free_port, wait_ready

# Every character that has a meaning in a URL's userinfo, path, query or fragment,
# plus an escape-looking sequence: a password that breaks naive URL handling.
HOSTILE_PASSWORD = "p@ss:w/rd%41#frag?q=1&x"
HOSTILE_USER = "ops:queue@ctl"


def secret_forms(secret: str) -> list[str]:
    """Every way ``secret`` may be printed: as is and percent-encoded (fully or as a path)."""
    return sorted({secret, quote(secret, safe=""), quote(secret)})


def assert_hidden(text: str | bytes, *secrets: str, where: str = "output") -> None:
    """No form of any of ``secrets`` appears in ``text``."""
    decoded = text if isinstance(text, str) else text.decode("utf-8", "replace")
    for secret in secrets:
        for form in secret_forms(secret):
            assert form not in decoded, f"{form!r} appears in {where}:\n{decoded[-3000:]}"


def assert_files_hidden(root: Path, *secrets: str) -> int:
    """No file under ``root`` holds a secret; returns how many files were read."""
    files = [path for path in root.rglob("*") if path.is_file() and not path.is_symlink()]
    for path in files:
        assert_hidden(path.read_bytes(), *secrets, where=str(path))
    return len(files)


@dataclass(frozen=True)
class TlsFiles:
    """A CA and the certificates it signed, as PEM files."""

    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(*args: str, cwd: Path) -> None:
    binary = shutil.which("openssl")
    assert binary, "openssl is required for the TLS tests"
    done = subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"openssl {' '.join(args)} failed:\n{done.stderr}"


def _sign(workdir: Path, name: str, subject: str, extensions: str) -> None:
    """A P-256 key and a certificate for it, signed by the CA in ``workdir``."""
    ext = workdir / f"{name}.ext"
    ext.write_text(extensions + "\nsubjectKeyIdentifier = hash\n"
                   "authorityKeyIdentifier = keyid\nbasicConstraints = critical, CA:FALSE\n")
    _openssl("req", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-keyout", f"{name}.key", "-out", f"{name}.csr",
             "-subj", subject, cwd=workdir)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-out", f"{name}.crt", "-extfile", ext.name,
             cwd=workdir)


def make_tls_files(workdir: Path) -> TlsFiles:
    """A throwaway CA with a server certificate (127.0.0.1, localhost) and a client one."""
    workdir.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-new", "-nodes", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-keyout", "ca.key", "-out", "ca.crt",
             "-days", "2", "-subj", "/CN=QueueCTL test CA",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=workdir)
    _sign(workdir, "server", "/CN=localhost",
          "subjectAltName = IP:127.0.0.1, DNS:localhost\nextendedKeyUsage = serverAuth\n"
          "keyUsage = critical, digitalSignature")
    _sign(workdir, "client", "/CN=queuectl-test-client",
          "extendedKeyUsage = clientAuth\nkeyUsage = critical, digitalSignature")
    return TlsFiles(workdir / "ca.crt", workdir / "server.crt", workdir / "server.key",
                    workdir / "client.crt", workdir / "client.key")


class GuardedRedis:
    """A redis-server with TLS (only), a password for the default user, or both."""

    def __init__(self, workdir: Path, *, tls: TlsFiles | None = None,
                 client_certs: bool = False, requirepass: str | None = None) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is required (apt-get install redis-server)"
        self.binary = binary
        self.workdir = workdir
        self.tls = tls
        self.client_certs = client_certs
        self.requirepass = requirepass
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def log_file(self) -> Path:
        return self.workdir / "redis.log"

    def url(self, user: str | None = None, password: str | None = None, *,
            client_cert: bool = False, ca: bool = True, db: int = 0) -> str:
        """The URL for ``user``/``password``, percent-encoded; rediss:// with the CA under TLS."""
        auth = ""
        if user is not None or password is not None:
            auth = quote(user or "", safe="")
            if password is not None:
                auth += ":" + quote(password, safe="")
            auth += "@"
        if self.tls is None:
            return f"redis://{auth}127.0.0.1:{self.port}/{db}"
        query = []
        if ca:
            query.append(f"ssl_ca_certs={quote(str(self.tls.ca_cert))}")
        if client_cert:
            query += [f"ssl_certfile={quote(str(self.tls.client_cert))}",
                      f"ssl_keyfile={quote(str(self.tls.client_key))}"]
        return f"rediss://{auth}127.0.0.1:{self.port}/{db}?{'&'.join(query)}"

    def admin_url(self) -> str:
        """A URL with every right: the default user (its password, a client certificate)."""
        return self.url(None, self.requirepass, client_cert=self.client_certs)

    def admin(self) -> redis.Redis:
        return redis.Redis.from_url(self.admin_url(), decode_responses=True)

    def start(self) -> GuardedRedis:
        args = [self.binary, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", str(self.workdir), "--logfile", str(self.log_file)]
        if self.tls is None:
            args += ["--port", str(self.port)]
        else:
            args += ["--port", "0", "--tls-port", str(self.port),
                     "--tls-cert-file", str(self.tls.server_cert),
                     "--tls-key-file", str(self.tls.server_key),
                     "--tls-ca-cert-file", str(self.tls.ca_cert),
                     "--tls-auth-clients", "yes" if self.client_certs else "no"]
        if self.requirepass is not None:
            args += ["--requirepass", self.requirepass]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_ready(self.admin_url())
        return self

    def add_user(self, name: str, password: str, *, commands: str = "+@all") -> None:
        """An ACL user with ``password``, every key and channel, and ``commands`` (ACL rules)."""
        with contextlib.closing(self.admin()) as admin:
            admin.acl_setuser(name, enabled=True, reset=True, passwords=[f"+{password}"],
                              keys=["*"], channels=["*"], commands=commands.split())

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
