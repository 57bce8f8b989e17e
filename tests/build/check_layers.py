#!/usr/bin/env python3
"""check_layers.py - the build keeps layers looking down (issue 7 point 5).

For each folder of src/, takes the compile command meson wrote for one of
its files (compile_commands.json) and compiles a two-line probe with it:
one probe that includes a header of the layer just below must compile
(so the probe itself works), one that includes a header of a higher layer
must fail with "No such file". Prints "N passed, N failed".

Usage: check_layers.py BUILD_DIR SOURCE_DIR
"""
import json
import os
import shlex
import subprocess
import sys
import tempfile

# file whose compile command is used: (a header of a layer below that it
# declares, a header of a higher layer it may not include). A layer sees
# only the libraries it declares, so the allowed probe names one of them.
LAYERS = {
    "core/buf.c": ("compat.h", "catalog.h"),
    "catalog/catalog.c": ("buf.h", "config.h"),
    "config/config.c": ("buf.h", "net_conn.h"),
    "net/net_conn.c": ("buf.h", "spool.h"),
    "store/spool.c": ("catalog.h", "directory.h"),
    "directory/directory.c": ("config.h", "deliver.h"),
    "deliver/deliver.c": ("directory.h", "policy.h"),
    "policy/policy_chain.c": ("deliver.h", "smtp_session.h"),
    "smtp/smtp_session.c": ("policy.h", "pop3.h"),
    "pop3/pop3_session.c": ("directory.h", "smtp_session.h"),
    "server/server.c": ("smtp_session.h", "no_such_layer_above_server.h"),
}


def command_for(cmds, path):
    for c in cmds:
        if c["file"].replace("\\", "/").endswith("src/" + path):
            return c
    return None


def probe(c, header, src_dir):
    args = shlex.split(c["command"]) if "command" in c else list(c["arguments"])
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "probe.c")
        with open(src, "w") as f:
            f.write('#include "%s"\nint probe_layers(void);\nint probe_layers(void) { return 0; }\n' % header)
        out = []
        skip = False
        for a in args:
            if skip:
                skip = False
                continue
            if a in ("-o", "-MF", "-MQ"):
                out += [a, os.path.join(d, "x" + a.strip("-"))] if a == "-o" else []
                skip = True
                continue
            if a == "-c":
                continue
            if a.endswith(".c") and os.path.basename(a) == os.path.basename(c["file"]):
                continue
            if a in ("-MD",):
                continue
            out.append(a)
        r = subprocess.run(out + ["-c", src], cwd=c["directory"], capture_output=True, text=True)
        return r.returncode == 0, r.stderr


def main():
    build, src_dir = sys.argv[1], sys.argv[2]
    with open(os.path.join(build, "compile_commands.json")) as f:
        cmds = json.load(f)
    passed = failed = 0
    for path, (allowed, forbidden) in LAYERS.items():
        folder = path.split("/")[0]
        c = command_for(cmds, path)
        if c is None:
            print("no compile command for src/%s" % path)
            failed += 1
            continue
        ok, err = probe(c, allowed, src_dir)
        if ok:
            passed += 1
        else:
            failed += 1
            print("src/%s cannot include %s (a lower layer):\n%s" % (folder, allowed, err[:400]))
        ok, err = probe(c, forbidden, src_dir)
        if not ok and "No such file" in err:
            passed += 1
        else:
            failed += 1
            print("src/%s can include %s (a higher layer)" % (folder, forbidden))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
