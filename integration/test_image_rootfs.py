#!/usr/bin/env python3
"""test_image_rootfs.py - the runtime image of docker/Dockerfile, built and run without Docker.

The runtime stage of docker/Dockerfile is rebuilt as a root file system:
debootstrap (Debian 12, minbase) with exactly the packages its apt-get
install line names (the common ones and the connector's extra ones, which
`docker/build.sh --extra-packages` prints), then the stage's own
instructions in their order: its RUN commands (useradd, the `--version`
check, the entrypoint link; apt-get is what debootstrap did), its COPY of
the connector (from `cmake --install` of this build), its ENV, USER,
WORKDIR and ENTRYPOINT. The destinations then run in it through chroot as
the image's user (uid 1000), the way the platform starts them (`sh -c
"$AIRBYTE_ENTRYPOINT ..."`): spec, check and a small write against the local
emulators, with rejected records going to the S3-compatible emulator and to
the default file of the image's /tmp; each source runs `spec` in its own
image. So a missing runtime library, a binary that needs root or a wrong
entrypoint fails here.

The debootstrapped bases are cached under the build directory
(<build>/image-rootfs/base-<hash of suite, mirror and packages>: one for the
common packages, one per distinct extra list), so only the first run
downloads; each run works on a copy. Needs root (chroot, debootstrap) and
the Debian mirror for the first run.
"""

import argparse
import hashlib
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lib  # noqa: E402
import crm360_helpers as crm  # noqa: E402
import shops_helpers as shops  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SUITE = "bookworm"  # Debian 12, the Dockerfile's base
MIRROR = os.environ.get("AB_DEBIAN_MIRROR", "http://deb.debian.org/debian")
S3_EMULATOR = os.path.join(lib.EMULATORS, "s3_emulator.py")
KEY_ID = "AKIAIMG" + secrets.token_hex(4).upper()
S3_SECRET = "img-secret-" + secrets.token_hex(16)
OPTS = None


# ---------------------------------------------------------------------------
# The Dockerfile's runtime stage
# ---------------------------------------------------------------------------

def instructions(text):
    """[(KEYWORD, argument text)] with continuation lines joined and
    comments dropped."""
    out, cur = [], ""
    for line in text.splitlines():
        if not cur and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            cur += line.rstrip()[:-1] + " "
            continue
        cur += line
        kw, _, arg = cur.strip().partition(" ")
        out.append((kw.upper(), arg.strip()))
        cur = ""
    return out


def extra_packages(connector):
    """What docker/build.sh passes as EXTRA_PACKAGES for the connector."""
    out = sh([os.path.join(OPTS.source_dir, "docker", "build.sh"), "--extra-packages",
              connector])
    return out.strip()


def runtime_stage(dockerfile, connector):
    """The runtime stage as a dict: packages, steps in order (("run", shell
    command other than apt-get's and the apt lists' removal) or ("copy",
    [src], dst)), env, user, workdir, entrypoint. ARGs are substituted
    (CONNECTOR and EXTRA_PACKAGES as docker/build.sh gives them)."""
    with open(dockerfile, encoding="utf-8") as f:
        ins = instructions(f.read())
    stage, args = None, {"CONNECTOR": connector, "EXTRA_PACKAGES": extra_packages(connector)}
    for i, (kw, arg) in enumerate(ins):
        if kw == "FROM" and re.search(r"\bAS\s+runtime\b", arg, re.I):
            stage = ins[i + 1:]
            break
    if stage is None:
        raise AssertionError("docker/Dockerfile has no 'FROM ... AS runtime' stage")
    st = {"packages": [], "steps": [], "env": {}, "user": None, "workdir": "/",
          "entrypoint": None}

    def subst(text):
        return re.sub(r"\$\{(\w+)\}|\$(\w+)",
                      lambda m: args.get(m.group(1) or m.group(2), m.group(0)), text)

    for kw, arg in stage:
        if kw == "FROM":
            break
        if kw == "ARG":
            name, _, default = arg.partition("=")
            args.setdefault(name, subst(default))
        elif kw == "RUN":
            for cmd in subst(arg).split("&&"):
                words = shlex.split(cmd)
                if words[:2] == ["apt-get", "install"]:
                    st["packages"] += [w for w in words[2:] if not w.startswith("-")]
                elif words[:1] == ["apt-get"] or words[:2] == ["rm", "-rf"] and \
                        all(w.startswith("/var/lib/apt/lists") for w in words[2:]):
                    continue
                else:
                    st["steps"].append(("run", cmd.strip()))
        elif kw == "COPY":
            words = [w for w in shlex.split(subst(arg)) if not w.startswith("--")]
            st["steps"].append(("copy", words[:-1], words[-1]))
        elif kw == "ENV":
            for k, v in re.findall(r'(\w+)="([^"]*)"', subst(arg)):
                st["env"][k] = v
        elif kw == "USER":
            st["user"] = subst(arg)
        elif kw == "WORKDIR":
            st["workdir"] = subst(arg)
        elif kw == "ENTRYPOINT":
            st["entrypoint"] = json.loads(arg)
    if not st["packages"]:
        raise AssertionError("no apt-get install line in the runtime stage")
    return st


# ---------------------------------------------------------------------------
# The root file system
# ---------------------------------------------------------------------------

def sh(argv, **kw):
    res = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)
    if res.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s" % (" ".join(argv), res.returncode,
                                                      res.stdout.decode(errors="replace")[-4000:]))
    return res.stdout.decode(errors="replace")


def base_rootfs(cache, packages):
    """The debootstrapped base for packages, built once per package list."""
    key = hashlib.sha256(json.dumps([SUITE, MIRROR, "minbase", sorted(packages)]).encode())
    path = os.path.join(cache, "base-" + key.hexdigest()[:16])
    if os.path.isfile(os.path.join(path, ".complete")):
        return path
    os.makedirs(cache, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="base-", dir=cache)
    os.chmod(tmp, 0o755)  # the image's "/": mkdtemp makes it 0700
    sys.stderr.write("debootstrap %s into %s (once; cached)\n" % (SUITE, path))
    try:
        sh(["debootstrap", "--variant=minbase", "--include=" + ",".join(sorted(packages)),
            SUITE, tmp, MIRROR])
        sh(["chroot", tmp, "apt-get", "clean"])
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    open(os.path.join(tmp, ".complete"), "w").close()
    shutil.rmtree(path, ignore_errors=True)
    os.rename(tmp, path)
    return path


class Image:
    """A working copy of the base with the runtime stage applied."""

    def __init__(self, base, stage, installed, workdir):
        self.stage = stage
        self.root = os.path.join(workdir, "rootfs")
        sh(["cp", "-a", base, self.root])
        os.chmod(self.root, 0o755)  # "/" must be searchable by the image's user
        for step in stage["steps"]:
            if step[0] == "run":
                sh(["chroot", self.root, "/bin/sh", "-c", step[1]])
                continue
            _, srcs, dst = step
            for src in srcs:
                # the build stage's DESTDIR=/out install; here this build's install
                rel = os.path.relpath(src, "/out/usr/local")
                if rel.startswith(".."):
                    raise AssertionError("COPY of %s: not from the install tree" % src)
                target = self.root + dst + (os.path.basename(src) if dst.endswith("/") else "")
                shutil.copy2(os.path.join(installed, rel), target)
        self.uid, _, self.gid = (stage["user"] or "0:0").partition(":")
        self.gid = self.gid or self.uid

    def path(self, inside):
        return self.root + inside

    def put(self, inside, data):
        """A file readable by the image's user."""
        with open(self.path(inside), "wb") as f:
            f.write(data if isinstance(data, bytes) else json.dumps(data).encode())
        os.chmod(self.path(inside), 0o644)
        return inside

    def run(self, args, stdin=None, timeout=120):
        """`sh -c "$AIRBYTE_ENTRYPOINT <args>"` as the image's user, in its
        WORKDIR, with only its ENV (and PATH)."""
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "HOME": self.stage["workdir"]}
        env.update(self.stage["env"])
        script = 'cd %s && exec $AIRBYTE_ENTRYPOINT %s' % (
            shlex.quote(self.stage["workdir"]), " ".join(shlex.quote(a) for a in args))
        argv = ["chroot", "--userspec=%s:%s" % (self.uid, self.gid), self.root,
                "/bin/sh", "-c", script]
        res = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env, timeout=timeout)
        return res.returncode, lib.parse_messages(res.stdout), res


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

class ImageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise AssertionError("building the root file system needs root (debootstrap, "
                                 "chroot); run the suite as root")
        cls.wd = lib.Workdir(prefix="ab-image-")
        cls.installed = os.path.join(cls.wd.path, "install")
        sh(["cmake", "--install", OPTS.build_dir, "--prefix", cls.installed])
        cls.dockerfile = os.path.join(OPTS.source_dir, "docker", "Dockerfile")
        cls.stage = runtime_stage(cls.dockerfile, "destination-crm360")
        cls.cache = os.path.join(OPTS.build_dir, "image-rootfs")
        cls.base = base_rootfs(cls.cache, cls.stage["packages"])
        cls.image = Image(cls.base, cls.stage, cls.installed, cls.wd.path)
        cls.crm = crm.start_emulator()
        cls.s3 = lib.Server(S3_EMULATOR, ["--bucket", "rejects",
                                          "--key", "%s:%s" % (KEY_ID, S3_SECRET)],
                            name="s3").start()

    @classmethod
    def tearDownClass(cls):
        for srv in ("crm", "s3"):
            if hasattr(cls, srv):
                getattr(cls, srv).stop()
        if hasattr(cls, "wd"):
            cls.wd.cleanup()

    def config(self, **over):
        cfg = {"api_url": self.crm.url, "api_key": crm.API_KEY, "requests_per_second": 0,
               "batch_size": 50}
        cfg.update(over)
        return self.image.put("/airbyte/config.json", cfg)

    def test_stage_is_what_the_dockerfile_says(self):
        st = self.stage
        self.assertIn("libcurl4", st["packages"])
        self.assertEqual(st["user"], "1000:1000")
        self.assertEqual(st["entrypoint"], [st["env"]["AIRBYTE_ENTRYPOINT"]])
        for pkg in st["packages"]:
            out = sh(["chroot", self.image.root, "dpkg-query", "-W", "-f=${Status}", pkg])
            self.assertIn("install ok installed", out, pkg)
        with open(self.image.path("/etc/passwd"), encoding="utf-8") as f:
            passwd = f.read()
        self.assertRegex(passwd, r"(?m)^airbyte:x:1000:1000:")
        # only runtime libraries: no compiler, no headers
        self.assertFalse(os.path.exists(self.image.path("/usr/bin/gcc")))
        self.assertFalse(os.path.exists(self.image.path("/usr/include/curl")))

    def test_spec(self):
        rc, msgs, res = self.image.run(["spec"])
        self.assertEqual(rc, 0, res.stderr)
        spec = [m for m in msgs if m["type"] == "SPEC"]
        self.assertEqual(len(spec), 1, msgs)
        props = spec[0]["spec"]["connectionSpecification"]["properties"]
        self.assertIn("object_storage_config", props)

    def test_check(self):
        rc, msgs, res = self.image.run(["check", "--config", self.config()])
        self.assertEqual(rc, 0, res.stderr)
        status = [m for m in msgs if m["type"] == "CONNECTION_STATUS"][0]["connectionStatus"]
        self.assertEqual(status["status"], "SUCCEEDED", status)
        rc, msgs, res = self.image.run(["check", "--config", self.config(api_key="sk-wrong-"
                                                                         + "x" * 16)])
        status = [m for m in msgs if m["type"] == "CONNECTION_STATUS"][0]["connectionStatus"]
        self.assertEqual(status["status"], "FAILED", status)

    def write(self, cfg_path, n=20, bad=(3,)):
        cat = self.image.put("/airbyte/catalog.json", crm.catalog(streams=("customers",),
                                                                  sync_id=77))
        lines = []
        for i in range(n):
            data = {"external_id": "IMG-%d" % i, "brand": "acme", "email": "i%d@example.com" % i,
                    "name": "Image %d" % i, "updated_at": "2026-05-01T00:00:00Z"}
            if i in bad:
                data["email"] = "not-an-email"
            lines.append({"type": "RECORD", "record": {"stream": "customers", "data": data,
                                                       "emitted_at": 1700000000000}})
        lines.append({"type": "STATE", "state": {"type": "STREAM", "stream": {
            "stream_descriptor": {"name": "customers"}, "stream_state": {"n": n}}}})
        stdin = b"".join(json.dumps(m).encode() + b"\n" for m in lines)
        return self.image.run(["write", "--config", cfg_path, "--catalog", cat], stdin=stdin)

    def test_write_rejections_to_s3(self):
        store = {"storage_type": "S3", "endpoint": self.s3.url, "region": "us-east-1",
                 "bucket": "rejects", "prefix": "img", "access_key_id": KEY_ID,
                 "secret_access_key": S3_SECRET}
        rc, msgs, res = self.write(self.config(object_storage_config=store))
        self.assertEqual(rc, 0, res.stderr + res.stdout)
        states = [m["state"] for m in msgs if m["type"] == "STATE"]
        self.assertEqual(len(states), 1, msgs)
        self.assertEqual(states[0]["destinationStats"]["rejectedRecordCount"], 1.0)
        self.assertNotIn(S3_SECRET.encode(), res.stdout + res.stderr)
        _, got = lib.http_json("GET", self.s3.url + "/_admin/objects")
        objs = [o for o in got["objects"] if o["key"].startswith("img/customers/")]
        self.assertEqual(len(objs), 1, got)
        line = json.loads(objs[0]["text"])
        self.assertEqual(line["record"]["external_id"], "IMG-3")

    def test_write_default_file_is_in_the_image_tmp(self):
        rc, msgs, res = self.write(self.config())
        self.assertEqual(rc, 0, res.stderr + res.stdout)
        path = self.image.path("/tmp/destination-crm360-sync-77-rejected.jsonl")
        st = os.stat(path)
        self.assertEqual((st.st_uid, st.st_mode & 0o777), (1000, 0o600))
        self.assertEqual([e["record"]["external_id"] for e in lib.read_jsonl(path)], ["IMG-3"])
        self.assertEqual(os.listdir(self.image.path("/airbyte")).count("rejected-records.jsonl"),
                         0)

    def test_shops_image_spec_and_check(self):
        stage = runtime_stage(self.dockerfile, "destination-shops")
        self.assertEqual(stage["packages"], self.stage["packages"])
        os.mkdir(self.wd.join("shops"))
        image = Image(self.base, stage, self.installed, self.wd.join("shops"))
        rc, msgs, res = image.run(["spec"])
        self.assertEqual(rc, 0, res.stderr)
        self.assertEqual([m["type"] for m in msgs], ["SPEC"])
        with shops.start_emulator() as srv:
            cfg = image.put("/airbyte/config.json",
                            shops.config(srv.url, self.wd, dead_letter_path=None))
            rc, msgs, res = image.run(["check", "--config", cfg])
        self.assertEqual(rc, 0, res.stderr)
        status = [m for m in msgs if m["type"] == "CONNECTION_STATUS"][0]["connectionStatus"]
        self.assertEqual(status["status"], "SUCCEEDED", status)

    def test_sources_spec(self):
        """Each source in its own image: the stage's --version check passes
        (every library it links is there) and spec runs as uid 1000; in an
        image with the common packages only, source-postgres cannot start
        (so its extra package is needed, and the --version step catches it)."""
        common = self.stage["packages"]
        images = {}
        for connector, extra in (("source-bling", []), ("source-postgres", ["libpq5"])):
            with self.subTest(connector=connector):
                stage = runtime_stage(self.dockerfile, connector)
                self.assertEqual(stage["packages"], common + extra)
                base = self.base if not extra else base_rootfs(self.cache, stage["packages"])
                os.mkdir(self.wd.join(connector))
                image = images[connector] = Image(base, stage, self.installed,
                                                  self.wd.join(connector))
                self.assertEqual(os.readlink(image.path("/usr/local/bin/connector")),
                                 "/usr/local/bin/" + connector)
                rc, msgs, res = image.run(["spec"])
                self.assertEqual(rc, 0, res.stderr)
                self.assertEqual([m["type"] for m in msgs], ["SPEC"], msgs)
                props = msgs[0]["spec"]["connectionSpecification"]["properties"]
                self.assertTrue(props, msgs[0])
        bling = images["source-bling"]
        shutil.copy2(os.path.join(self.installed, "bin", "source-postgres"),
                     bling.path("/usr/local/bin/source-postgres"))
        res = subprocess.run(["chroot", bling.root, "/usr/local/bin/source-postgres",
                              "--version"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.assertNotEqual(res.returncode, 0)
        self.assertIn(b"libpq.so.5", res.stderr)


def main():
    global OPTS
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--build-dir", required=True, help="the CMake build directory")
    p.add_argument("--source-dir", required=True, help="the repository")
    OPTS, rest = p.parse_known_args()
    OPTS.build_dir = os.path.abspath(OPTS.build_dir)
    OPTS.source_dir = os.path.abspath(OPTS.source_dir)
    prog = unittest.main(argv=[sys.argv[0], "-v"] + rest, exit=False)
    sys.exit(0 if prog.result.wasSuccessful() and prog.result.testsRun > 0 else 1)


if __name__ == "__main__":
    main()
