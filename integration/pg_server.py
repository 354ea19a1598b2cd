"""pg_server.py - a throwaway PostgreSQL cluster for the source-postgres tests.

    with pg_server.PgServer(cache_dir="build/gcc/sources/postgres") as pg:
        pg.sql("create table t (id int primary key)")
        config = pg.config(database="app")

The first use builds a template cluster with initdb (wal_level=logical,
scram-sha-256 for TCP, trust on the unix socket, a self-signed CA and a
server certificate for 127.0.0.1/localhost) and keeps it under cache_dir
(the build folder), so later clusters are a copy: a start takes well under
a second. Each server listens on 127.0.0.1 on a free port and on a unix
socket in its own temporary directory, which stop() removes.

PostgreSQL refuses to run as root; as root (CI) the server runs as the
unprivileged user "nobody" through runuser, and the cluster directory is
chowned to it. The server binaries come from the Debian package
(postgresql, /usr/lib/postgresql/<major>/bin); AB_PG_BINDIR overrides.

Standard library only.
"""

import fcntl
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time

import lib

SUPERUSER = "postgres"
SUPERPASS = "superpass-for-tests"
RUN_AS = "nobody"


def bindir():
    env = os.environ.get("AB_PG_BINDIR")
    if env:
        return env
    cands = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"),
                   key=lambda p: int(p.split("/")[-3]))
    if not cands:
        raise RuntimeError("PostgreSQL server binaries not found: "
                           "integration/install-deps.sh installs the Debian package postgresql")
    return os.path.dirname(cands[-1])


def _as_root():
    return os.geteuid() == 0


def _prefix():
    return ["runuser", "-u", RUN_AS, "--"] if _as_root() else []


def _chown_tree(path):
    if not _as_root():
        return
    pw = pwd.getpwnam(RUN_AS)
    for root, dirs, files in os.walk(path):
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for n in dirs + files:
            os.lchown(os.path.join(root, n), pw.pw_uid, pw.pw_gid)


def _run(argv, **kw):
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    if res.returncode != 0:
        raise RuntimeError("%s failed (%d): %s" % (argv[0], res.returncode,
                                                   res.stdout.decode(errors="replace")))
    return res.stdout.decode()


def _make_certs(d):
    """CA and server certificate (127.0.0.1, localhost), and a client
    certificate for user postgres, all signed by the CA."""
    ossl = ["openssl"]
    _run(ossl + ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
                 "-subj", "/CN=ab-test-ca", "-keyout", d + "/ca.key", "-out", d + "/ca.crt"])
    ext = d + "/san.ext"
    with open(ext, "w", encoding="ascii") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name, cn, extfile in (("server", "localhost", ext), ("client", SUPERUSER, None)):
        _run(ossl + ["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + cn,
                     "-keyout", "%s/%s.key" % (d, name), "-out", "%s/%s.csr" % (d, name)])
        argv = ossl + ["x509", "-req", "-in", "%s/%s.csr" % (d, name), "-CA", d + "/ca.crt",
                       "-CAkey", d + "/ca.key", "-CAcreateserial", "-days", "3650",
                       "-out", "%s/%s.crt" % (d, name)]
        if extfile:
            argv += ["-extfile", extfile]
        _run(argv)
        os.chmod("%s/%s.key" % (d, name), 0o600)


def _build_template(dest):
    """initdb into a temporary folder, then move it to dest."""
    tmp = tempfile.mkdtemp(prefix="ab-pg-tmpl-")
    try:
        os.chmod(tmp, 0o755)
        data = os.path.join(tmp, "data")
        pwfile = os.path.join(tmp, "pw")
        with open(pwfile, "w", encoding="ascii") as f:
            f.write(SUPERPASS + "\n")
        os.chmod(pwfile, 0o644)
        _chown_tree(tmp)
        _run(_prefix() + [os.path.join(bindir(), "initdb"), "-D", data, "-U", SUPERUSER,
                          "--pwfile", pwfile, "--auth-local=trust",
                          "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
                          "--no-sync"])
        certs = os.path.join(tmp, "certs")
        os.mkdir(certs)
        _make_certs(certs)
        for n in ("server.crt", "server.key", "ca.crt"):
            shutil.copy(os.path.join(certs, n), os.path.join(data, n))
        with open(os.path.join(data, "postgresql.conf"), "a", encoding="ascii") as f:
            f.write("\n# ab test template\n"
                    "wal_level = logical\nmax_wal_senders = 10\nmax_replication_slots = 10\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "shared_buffers = 32MB\nmax_connections = 40\n"
                    "ssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
                    "ssl_ca_file = 'ca.crt'\n")
        with open(os.path.join(data, "pg_hba.conf"), "w", encoding="ascii") as f:
            f.write("local all all trust\n"
                    "local replication all trust\n"
                    "hostssl all certuser 127.0.0.1/32 cert\n"
                    "host all all 127.0.0.1/32 scram-sha-256\n"
                    "host replication all 127.0.0.1/32 scram-sha-256\n")
        os.chmod(os.path.join(data, "server.key"), 0o600)
        _chown_tree(data)
        stage = dest + ".stage%d" % os.getpid()
        shutil.rmtree(stage, ignore_errors=True)
        os.makedirs(stage)
        shutil.copytree(data, os.path.join(stage, "data"), symlinks=True)
        shutil.copytree(certs, os.path.join(stage, "certs"))
        shutil.rmtree(dest, ignore_errors=True)
        os.rename(stage, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def template(cache_dir):
    """The cached template folder (data/ and certs/), built once; a lock
    file keeps parallel tests from building it twice."""
    os.makedirs(cache_dir, exist_ok=True)
    dest = os.path.join(cache_dir, "pg-template-" + os.path.basename(os.path.dirname(bindir())))
    with open(dest + ".lock", "w", encoding="ascii") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(os.path.join(dest, "data", "PG_VERSION")):
            _build_template(dest)
    return dest


class PgServer:
    """One running cluster copied from the template."""

    def __init__(self, cache_dir, ssl=True, extra_conf=()):
        self.cache_dir = cache_dir
        self.ssl = ssl
        self.extra_conf = list(extra_conf)
        self.dir = None
        self.proc = None
        self.port = None

    @property
    def data(self):
        return os.path.join(self.dir, "data")

    @property
    def sockdir(self):
        return self.dir

    def cert(self, name):
        return os.path.join(self.dir, "certs", name)

    def pem(self, name):
        with open(self.cert(name), encoding="ascii") as f:
            return f.read()

    def start(self):
        tmpl = template(self.cache_dir)
        self.dir = tempfile.mkdtemp(prefix="ab-pg-")
        os.chmod(self.dir, 0o755)
        shutil.copytree(os.path.join(tmpl, "data"), self.data, symlinks=True)
        shutil.copytree(os.path.join(tmpl, "certs"), os.path.join(self.dir, "certs"))
        os.chmod(self.data, 0o700)
        _chown_tree(self.dir)
        self.port = lib.free_port()
        argv = _prefix() + [os.path.join(bindir(), "postgres"), "-D", self.data,
                            "-p", str(self.port), "-k", self.sockdir,
                            "-c", "listen_addresses=127.0.0.1",
                            "-c", "ssl=" + ("on" if self.ssl else "off")]
        for c in self.extra_conf:
            argv += ["-c", c]
        self.log_path = os.path.join(self.dir, "server.log")
        logf = open(self.log_path, "wb")  # pylint: disable=consider-using-with
        self.proc = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()
        deadline = time.time() + 30
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("postgres exited: " + self.log())
            r = subprocess.run([os.path.join(bindir(), "pg_isready"), "-q", "-h", self.sockdir,
                                "-p", str(self.port)], check=False)
            if r.returncode == 0:
                return self
            time.sleep(0.05)
        raise RuntimeError("postgres did not start: " + self.log())

    def log(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def postmaster_pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid"), encoding="ascii") as f:
                return int(f.readline())
        except (OSError, ValueError):
            return None

    def stop(self):
        if self.proc is not None:
            pid = self.postmaster_pid()
            try:
                os.kill(pid if pid else self.proc.pid, signal.SIGINT)  # fast shutdown
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            deadline = time.time() + 10
            while pid and time.time() < deadline and os.path.exists("/proc/%d" % pid):
                time.sleep(0.05)
            self.proc = None
        if self.dir:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- clients ----------------------------------------------------------

    def psql_argv(self, database="postgres", user=SUPERUSER):
        return [os.path.join(bindir(), "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                "-h", self.sockdir, "-p", str(self.port), "-U", user, "-d", database]

    def sql(self, text, database="postgres", user=SUPERUSER):
        """Runs SQL through psql on the unix socket; returns unaligned,
        tuples-only output. Raises on any error."""
        res = subprocess.run(self.psql_argv(database, user) + ["-A", "-t", "-F", "\t"],
                             input=text.encode(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, check=False)
        if res.returncode != 0:
            raise RuntimeError("psql: " + res.stderr.decode(errors="replace"))
        return res.stdout.decode()

    def config(self, database="postgres", user=SUPERUSER, password=SUPERPASS, **over):
        cfg = {"host": "127.0.0.1", "port": self.port, "database": database,
               "username": user, "password": password, "ssl_mode": {"mode": "disable"}}
        cfg.update(over)
        return cfg
