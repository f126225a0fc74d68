#!/usr/bin/env python3
"""peinit benchmark (run it through tests/bench/run, which does the set-up).

Three parts, each side by side in one run:
  modules    the module stage in the QEMU boot harness (TCG, -smp 2): peinit with its default
             worker count, peinit with workers=1, `modprobe -a` (kmod) on the same list, a
             bare finit_module loop over a precomputed order, and the same loop run level by
             level on two threads (what a perfect scheduler over the same dependency levels
             achieves), on two workloads; with peinit's stage split into its phases;
  image      `peinit-image build` vs mkinitramfs (initramfs-tools) vs dracut for Debian's kernel
             and the same module set: wall time, output size, byte-reproducibility;
  footprint  peinit's binary sizes and PID 1's memory after boot (from the module boots);
  compressed the cost of compressed modules (R-30): peinit's module stage on the `real` workload
             with the closure's modules as .ko, .ko.xz and .ko.zst (decompressed in memory);
  realroot   the initramfs role on Debian's kernel and the real-root fixture (Debian 12 with
             systemd, root=UUID=): guest time from `Run /init` to systemd's first line and to
             the lock, peinit's image vs Debian's own initramfs-tools image (mkinitramfs,
             default MODULES=most) of the same kernel and disk.
The modules and realroot parts also boot peinit's image with a TPM (a private swtpm; measured
boot, ATTESTATION.md) beside the same image without one: the measurements' cost (--no-tpm skips
those boots).
Prints tables and writes every figure as JSON. Exits 1, each reason on stderr and in the JSON's
"failures", when a figure is not a measurement: a boot of a mode that does not load exactly the
closure, a boot whose record is missing or unreadable, fewer load syscalls than modules loaded
(where the kernel counts them), a ratio whose operand is absent or zero, a boot with a TPM that did not measure every module it
loaded.
"""
import argparse
import contextlib
import hashlib
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The real workload: Debian's own signed modules, 27 unrelated top-level drivers and file systems
# a distribution's initramfs or early boot might load (disk and network controllers, file
# systems, network stacks, device-mapper and MD targets, USB storage, sound), with every
# dependency and soft dependency: 102 modules in the closure, chosen for breadth, not for how
# well they parallelise. CPU-bound: relocation and signature checks.
REAL_MODULES = ["ext4", "btrfs", "xfs", "vfat", "nfsv4", "cifs", "virtio_net", "e1000", "e1000e",
                "igb", "ixgbe", "r8169", "bridge", "bonding", "tun", "sctp", "dm_crypt",
                "dm_raid", "raid456", "nf_tables", "nft_ct", "snd_hda_intel", "snd_usb_audio",
                "usb_storage", "uas", "nvme", "iscsi_tcp"]
# The slow workload: eight independent test modules whose init sleeps 200 ms (I/O-bound).
SLOW_MODULES = ["peinit_test_slow%d" % i for i in range(1, 9)]
MODES = ["peinit", "peinit-tpm", "peinit-w1", "modprobe", "loop", "levels"]
MODE_LABELS = {
    "peinit": "peinit, default workers",
    "peinit-tpm": "peinit, default workers, measured boot (swtpm)",
    "peinit-w1": "peinit, workers=1",
    "modprobe": "modprobe -a (kmod)",
    "loop": "bare finit_module loop",
    "levels": "bare loop, level by level on 2 workers",
}
TRACE = "trace_event=syscalls:sys_enter_init_module,syscalls:sys_enter_finit_module"


def read_text(path):
    """A file's text, "" when there is none (a boot that never wrote its results channel)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, **kw)


# A guest kernel that has not started user space ("Run /init as init process") this long after
# QEMU started has stalled (under TCG about once in a hundred boots: an RCU stall before /init,
# the emulator's, not the image's). Such a boot is stopped and run once more.
STALL_S = 60
USER_SPACE = " as init process"


def run_boot(cmd, timeout, stall_s=None):
    """Runs one boot (qemu-system-x86_64, or peinit-image boot, which passes QEMU's console
    through) and returns (stdout, stderr, exit status, what happened): "" for a boot that ended
    by itself, "timed out after N s" past `timeout`, "stalled ..." when no USER_SPACE line came
    within `stall_s` s (STALL_S by default)."""
    stall_s = STALL_S if stall_s is None else stall_s
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, errors="replace",
                         start_new_session=True)  # its own group: QEMU goes with it
    out, err = [], []
    readers = [threading.Thread(target=lambda f=f, into=into: into.extend(f))
               for f, into in ((p.stdout, out), (p.stderr, err))]
    for t in readers:
        t.start()
    start, seen, in_user_space, what = time.monotonic(), 0, False, ""
    while p.poll() is None:
        elapsed = time.monotonic() - start
        while not in_user_space and seen < len(out):
            in_user_space = USER_SPACE in out[seen]
            seen += 1
        if elapsed > timeout or (not in_user_space and elapsed > stall_s):
            what = ("timed out after %d s" % timeout if elapsed > timeout else
                    "stalled in the guest kernel before user space (no \"Run /init\" after "
                    "%d s)" % stall_s)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, 9)
            break
        time.sleep(0.1)
    p.wait()
    for t in readers:
        t.join()
    p.stdout.close()
    p.stderr.close()
    return "".join(out), "".join(err), p.returncode, what


def boot_with_retry(boot, name, results):
    """`boot()` (a run_boot with whatever it needs set up afresh: a private TPM), once more when
    the first stalled before user space (named in the warnings)."""
    out, err, rc, what = boot()
    if what.startswith("stalled"):
        lines = out.splitlines()
        results["warnings"].append("%s: %s; its last line: %s; booted once more"
                                   % (name, what, lines[-1] if lines else "none"))
        log(results["warnings"][-1])
        out, err, rc, what = boot()
    if what:
        err += "\nbench: %s: %s\n" % (name, what)
    return out, err, rc


def kver_of(kernel_dir):
    with open(os.path.join(kernel_dir, "kver")) as f:
        return f.read().strip()


class Workload:
    def __init__(self, name, kernel, kernel_dir, modules, extra_modules, memory, qemu_args,
                 append):
        self.name, self.kernel, self.kernel_dir = name, kernel, kernel_dir
        self.modules, self.extra_modules = modules, extra_modules
        self.memory, self.qemu_args, self.append = memory, qemu_args, append
        self.kver = kver_of(kernel_dir)


def module_list(text):
    """--modules: names separated by commas or white space, each once, in the order given."""
    names = []
    for name in re.split(r"[,\s]+", text.strip()):
        if not name:
            continue
        if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
            raise argparse.ArgumentTypeError("%r is not a module name" % name)
        if name not in names:
            names.append(name)
    if not names:
        raise argparse.ArgumentTypeError("no module named")
    return names


def real_modules(args):
    """The top-level modules of the Debian-kernel workload: --modules, else REAL_MODULES."""
    return getattr(args, "modules", None) or REAL_MODULES


def workloads(args):
    out = []
    if "real" in args.workloads:
        out.append(Workload("real", "debian", os.environ["PEINIT_DEBIAN_KERNEL_DIR"],
                            real_modules(args), [], 1024, ["-cpu", "max"], [TRACE]))
    if "slow" in args.workloads:
        kdir = os.environ["PEINIT_KERNEL_DIR"]
        out.append(Workload("slow", "peinit", kdir, SLOW_MODULES,
                            [os.path.join(kdir, "test-modules", m + ".ko") for m in SLOW_MODULES],
                            512, [], []))
    return out


def toml_list(items):
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def probe_privileges(mode, traced):
    """What the probe's unit grants it (units/SCHEMA.md; R-28: a service holds neither privilege
    unless its unit grants it): SeLoadDriverPrivilege (CAP_SYS_MODULE) in the modes that load
    the modules themselves, SeTcbPrivilege (CAP_SYS_ADMIN) to mount tracefs when the kernel
    counts the load syscalls (`traced`). The images never lock (LockAfterBoot = false)."""
    privileges = [] if mode.startswith("peinit") else ["SeLoadDriverPrivilege"]
    return privileges + (["SeTcbPrivilege"] if traced else [])


def write_image(dir_, w, mode, order_file=None, loose=True, probe=True, levels_file=None,
                traced=None):
    """Writes an image definition for workload `w` in `mode` into dir_. `traced`: whether the
    boot's kernel command line counts load syscalls (default: the workload's own)."""
    os.makedirs(os.path.join(dir_, "units"), exist_ok=True)
    with open(os.path.join(dir_, "hive.toml"), "w") as f:
        # Every mode the same: no lock (modprobe and the loop run after the stages), and demand
        # loads refused, so only the listed set loads.
        f.write("[Machine.System.Modules]\nLockAfterBoot = false\nAutoLoadPolicy = \"disabled\"\n")
    units = ""
    if mode.startswith("peinit"):
        units += "".join('[[module]]\nname = "%s"\n\n' % m for m in w.modules)
        exec_ = ["/usr/bin/bench_probe", "peinit"]
    elif mode == "modprobe":
        exec_ = ["/usr/bin/bench_probe", "modprobe"] + w.modules
    elif mode == "levels":
        exec_ = ["/usr/bin/bench_probe", "levels", "/etc/bench/levels"]
    else:
        exec_ = ["/usr/bin/bench_probe", "loop", "/etc/bench/order"]
    if probe:
        privileges = probe_privileges(mode, TRACE in w.append if traced is None else traced)
        units += ('[[service]]\nname = "bench-probe"\nexec = %s\nexit_action = "poweroff"\n'
                  % toml_list(exec_))
        if privileges:
            units += "privileges = %s\n" % toml_list(privileges)
    with open(os.path.join(dir_, "units", "bench.toml"), "w") as f:
        f.write('description = "benchmark: %s, %s"\n\n' % (w.name, mode) + units)
    files = [("@BUILD@/tests/bench/bench_probe", "/usr/bin/bench_probe"),
             ("/bin/kmod", "/sbin/modprobe")]
    if order_file:
        files.append((order_file, "/etc/bench/order"))
    if levels_file:
        files.append((levels_file, "/etc/bench/levels"))
    build = os.environ["PEINIT_BUILD_DIR"]
    text = 'kernel = "%s"\nunits = ["units"]\nhive = "hive.toml"\n' % w.kernel
    text += "modules = %s\n" % toml_list(w.modules)
    if w.extra_modules:
        text += "extra_modules = %s\n" % toml_list(w.extra_modules)
    text += "loose_modules = %s\n" % ("true" if loose else "false")
    text += 'compression = "none"\n' if loose else 'compression = "zstd"\n'
    if probe:
        for src, dst in files:
            text += '\n[[files]]\nsrc = "%s"\ndst = "%s"\n' % (src.replace("@BUILD@", build), dst)
    text += "\n[boot]\nmemory = %d\nsmp = 2\nqemu_args = %s\n" % (w.memory, toml_list(w.qemu_args))
    with open(os.path.join(dir_, "image.toml"), "w") as f:
        f.write(text)


def image_tool():
    return os.path.join(os.environ["PEINIT_BUILD_DIR"], "initramfs", "peinit-image")


def load_order(w, work):
    """The precomputed load order for the bare loop: kmod's own resolution
    (`modprobe --show-depends`) run on the host against the image's module tree."""
    d = os.path.join(work, "order-image")
    write_image(d, w, "modprobe")
    img = os.path.join(work, "order.cpio")
    run([image_tool(), "build", d, "-o", img, "--kernel-dir", w.kernel_dir],
        stdout=subprocess.DEVNULL)
    root = os.path.join(work, "order-root")
    # A fresh tree every run: `cpio -idm` does not overwrite newer files, so a tree left by a run
    # with another module list would keep its modules.dep.
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    with open(img, "rb") as f:
        subprocess.run(["cpio", "-idm", "--quiet"], cwd=root, stdin=f, check=True)
    out = run(["modprobe", "-d", root, "-S", w.kver, "-a", "--show-depends"] + w.modules,
              capture_output=True).stdout
    paths = []
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "insmod":
            p = parts[1][len(root):]
            if p not in paths:
                paths.append(p)
    order = os.path.join(work, "order.txt")
    with open(order, "w") as f:
        f.write("\n".join(paths) + "\n")
    # The dependency levels of the same modules (kmod's modinfo: hard dependencies; a module
    # comes one level after the deepest module it depends on), for the level-by-level loop.
    name_of = {p: re.sub(r"\.ko(\.\w+)?$", "", os.path.basename(p)).replace("-", "_")
               for p in paths}
    in_set = set(name_of.values())
    level = {}
    for p in paths:  # modprobe's order puts every dependency first
        deps = run(["modinfo", "-F", "depends", root + p], capture_output=True).stdout.strip()
        deps = [d.replace("-", "_") for d in deps.split(",") if d]
        level[name_of[p]] = 1 + max([level.get(d, 0) for d in deps if d in in_set] or [0])
    levels = os.path.join(work, "levels.txt")
    with open(levels, "w") as f:
        for p in sorted(paths, key=lambda p: (level[name_of[p]], paths.index(p))):
            f.write("%d %s\n" % (level[name_of[p]], p))
    return order, levels, len(paths), max(level.values())


def parse_probe(text):
    """One probe's record (bench_probe.c) as it wrote it to the results channel (the guest's
    /dev/ttyS2, `peinit-image boot --results FILE`), where nothing else writes: its "BENCH
    key=value" lines, the "BENCH_RECORD" lines (peinit's /run/peinit/modules.json) and "BENCH
    done", each line whole. The one reader of a probe's output."""
    fig = {"loop_errors": []}
    record_lines = []
    for line in text.splitlines():
        m = re.match(r"BENCH (\w+)=(\S+)", line)
        if m:
            if m.group(1) == "loop_error":
                fig["loop_errors"].append(m.group(2))
            else:
                fig[m.group(1)] = m.group(2)
        if line.startswith("BENCH_RECORD "):
            record_lines.append(line[len("BENCH_RECORD "):])
    fig["done"] = re.search(r"^BENCH done\r?$", text, re.M) is not None
    fig["record"] = bool(record_lines)
    if record_lines:
        try:
            rec = json.loads("\n".join(record_lines))
            loads = [m for m in rec["modules"] if m["status"] in ("loaded", "failed")]
            if loads:
                first = min(m["start_us"] for m in loads)
                last = max(m["start_us"] + m["duration_us"] for m in loads)
                fig["span_ms"] = (last - first) / 1000.0
            fig["already_loaded"] = sum(1 for m in rec["modules"]
                                        if m["status"] == "already-loaded")
            fig["failed_modules"] = ["%s (%s)" % (m["name"], m.get("errno") or m.get("reason")
                                                  or "no reason recorded")
                                     for m in rec["modules"] if m["status"] == "failed"]
            for k, v in rec.get("phases", {}).items():
                fig["phase_" + k] = v
        except (ValueError, KeyError, TypeError) as e:
            fig["record_error"] = "%s: %s" % (type(e).__name__, e)
    return fig


def parse_boot(console, results):
    """A boot's figures: the probe's record from the results channel (parse_probe) and peinit's
    own `modules done` line from the console."""
    fig = parse_probe(results)
    m = re.search(r"modules done ok=(\d+) failed=(\d+) .*?\bms=(\d+) workers=(\d+)", console)
    if m:
        fig.update(stage_ok=int(m.group(1)), stage_failed=int(m.group(2)),
                   stage_ms=int(m.group(3)), workers=int(m.group(4)))
    fig.update(measure_parse(console))
    return fig


def measure_parse(console):
    """What PID 1 said about measured boot (stages/measure, peinit/tpm/measure.cpp): whether it
    found a TPM, how many modules it measured, and whether measuring stopped on an error."""
    return {"measure_tpm": re.search(r"peinit: measure: TPM ", console) is not None,
            "measured_modules": len(re.findall(r"peinit: measure: module pcr=", console)),
            "measure_failed": "measured boot stops here" in console}


def num(v):
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def bench_modules(args, work, results):
    for w in workloads(args):
        log("workload %s: %s kernel %s, modules %s" % (w.name, w.kernel, w.kver,
                                                       " ".join(w.modules)))
        wdir = os.path.join(work, w.name)
        shutil.rmtree(wdir, ignore_errors=True)  # nothing left from an earlier run
        order, levels, n_order, n_levels = load_order(w, wdir)
        modes = [m for m in MODES if args.tpm or m != "peinit-tpm"]
        for mode in modes:
            write_image(os.path.join(wdir, mode), w, mode, order_file=order, levels_file=levels)
        boots = {mode: [] for mode in modes}
        for i in range(args.boots):
            for mode in modes:  # round-robin: host load drifts evenly over the modes
                extra = list(w.append) + (["peinit.workers=1"] if mode == "peinit-w1" else [])
                results_file = os.path.join(wdir, "%s-%d.results" % (mode, i + 1))
                cmd = [image_tool(), "boot", os.path.join(wdir, mode), "--kernel-dir",
                       w.kernel_dir, "--timeout", "600", "--results", results_file,
                       "--output", os.path.join(wdir, mode + ".cpio")]
                if mode == "peinit-tpm":
                    cmd.append("--tpm")
                if extra:
                    cmd += ["--"] + extra
                t0 = time.monotonic()
                stdout, stderr, rc = boot_with_retry(
                    lambda: run_boot(cmd, 660), "%s/%s boot %d" % (w.name, mode, i + 1), results)
                wall = time.monotonic() - t0
                fig = parse_boot(stdout, read_text(results_file))
                fig["boot_s"] = round(wall, 2)
                fig["exit"] = rc
                boot_log = os.path.join(wdir, "%s-%d.log" % (mode, i + 1))
                with open(boot_log, "w") as f:
                    f.write(stdout + stderr)
                boots[mode].append(fig)
                problems = boot_problems(mode, fig, n_order, TRACE in w.append)
                log("%s/%s boot %d: %s%s" % (w.name, mode, i + 1, summary_of(mode, fig),
                                              "; " + "; ".join(problems + ["log " + boot_log])
                                              if problems else ""))
        meta = {"kernel": w.kernel, "kernel_release": w.kver, "modules": w.modules,
                "levels": n_levels}
        out, failures = summarize(w.name, meta, boots, n_order, TRACE in w.append)
        results["modules"][w.name] = out
        results["failures"] += failures


def load_ms(mode, fig):
    return num(fig.get("stage_ms")) if mode.startswith("peinit") else num(fig.get("load_ms"))


def load_syscalls(fig):
    """init_module + finit_module calls the kernel saw, or None when not counted."""
    a, b = num(fig.get("init_module_calls")), num(fig.get("finit_module_calls"))
    return int(a + b) if a is not None and b is not None else None


def summary_of(mode, fig):
    parts = ["load %s ms" % load_ms(mode, fig)]
    if "span_ms" in fig:
        parts.append("span %.0f ms" % fig["span_ms"])
    parts.append("proc_modules %s" % fig.get("proc_modules"))
    parts.append("load syscalls %s+%s" % (fig.get("init_module_calls"),
                                          fig.get("finit_module_calls")))
    return ", ".join(parts)


CAP_SYS_MODULE = 16


def boot_problems(mode, fig, closure, traced):
    """Why one boot's figures are not a measurement of `mode` loading the `closure` modules
    (empty: they are). `fig`: parse_boot's figures with the boot's "exit" status; `traced`: the
    kernel counts load syscalls, so there must be at least one per module loaded."""
    problems = []
    if fig.get("exit", 0) != 0:
        problems.append("peinit-image boot exited %s" % fig["exit"])
    if not fig.get("done"):
        return problems + ["the probe's record is missing (no \"BENCH done\")"]
    peinit = mode.startswith("peinit")
    if peinit:
        if fig.get("stage_ms") is None:
            problems.append("no \"modules done\" line from peinit")
        if not fig.get("record"):
            problems.append("no modules.json in the probe's record")
        elif "record_error" in fig:
            problems.append("modules.json in the probe's record is unreadable (%s)"
                            % fig["record_error"])
        if fig.get("stage_failed"):
            named = fig.get("failed_modules") or []
            which = ", ".join(named[:5])
            if len(named) > 5:
                which += " and %d more" % (len(named) - 5)
            problems.append("%d modules failed in peinit's stage%s"
                            % (fig["stage_failed"], ": " + which if which else ""))
        problems += measure_problems(mode, fig, fig.get("stage_ok"))
    else:
        if num(fig.get("load_ms")) is None:
            problems.append("no load_ms in the probe's record")
        failed = num(fig.get("load_failed"))
        if failed is None:
            problems.append("no load_failed in the probe's record")
        elif failed:
            errors = fig.get("loop_errors", [])
            problems.append("the loads failed (%s)" % (
                "%d errors, first %s" % (len(errors), errors[0]) if errors
                else "modprobe exited non-zero"))
    loaded = num(fig.get("proc_modules"))
    if loaded is None:
        problems.append("no proc_modules in the probe's record")
    elif loaded != closure:
        why = ""
        cap = fig.get("cap_eff")
        if not peinit and cap is not None:
            try:
                if not int(cap, 16) >> CAP_SYS_MODULE & 1:
                    why = " (the probe lacks CAP_SYS_MODULE: its unit must grant "
                    why += "SeLoadDriverPrivilege)"
            except ValueError:
                pass
        problems.append("%d modules loaded, the closure has %d%s" % (loaded, closure, why))
    if traced:
        calls = load_syscalls(fig)
        if calls is None:
            problems.append("load syscalls not counted (%s)"
                            % fig.get("load_syscalls_error", "no count in the record"))
        elif loaded is not None and calls < loaded:
            problems.append("%d load syscalls for %d modules loaded" % (calls, loaded))
    return problems


def measure_problems(mode, fig, loaded):
    """Why a boot is not a measurement of its mode's measured boot: with a TPM (peinit-tpm) PID 1
    must have found it and measured each module it loaded (`loaded`; None: not known), without
    one it must not have measured anything."""
    if mode != "peinit-tpm":
        return ["measured without a TPM"] if fig.get("measure_tpm") else []
    if not fig.get("measure_tpm"):
        return ["no TPM found by PID 1 (no \"measure: TPM\" line; is swtpm installed?)"]
    if fig.get("measure_failed"):
        return ["measured boot stopped on an error"]
    if loaded is not None and fig.get("measured_modules") != loaded:
        return ["%s modules measured, %s loaded" % (fig.get("measured_modules"), loaded)]
    return []


def ratio(name, numerator, denominator, failures, digits=2):
    """numerator / denominator, each (label, value), rounded; None and a failure naming the
    operand when either is not a measurement (None) or the denominator is not positive."""
    for role, (label, value) in (("numerator", numerator), ("denominator", denominator)):
        if value is None or (role == "denominator" and value <= 0):
            failures.append("ratio %s not computed: its %s (%s) is %s" % (
                name, role, label, "not a measurement" if value is None else value))
            return None
    return round(numerator[1] / denominator[1], digits)


def per_round(numerators, denominators):
    """numerator / denominator of each round (dicts round -> value), rounded to 2 digits; None
    for a round in which either boot is missing or the denominator is not positive; [] when no
    round has both."""
    rounds = range(max(list(numerators) + list(denominators), default=-1) + 1)
    out = [round(numerators[r] / denominators[r], 2)
           if numerators.get(r) is not None and (denominators.get(r) or 0) > 0 else None
           for r in rounds]
    return out if any(v is not None for v in out) else []


def summarize(name, meta, boots, closure, traced):
    """The module stage of one workload from its boots' figures: (summary, failures).

    `boots`: mode -> [parse_boot figures with "exit" and "boot_s"], `closure`: the number of
    modules every mode must load, `traced`: load syscalls are counted. A boot with a problem
    (boot_problems) is a failure and none of its figures enter the medians; a ratio whose
    operands are not both medians of such measurements is a failure and None. Load syscalls
    beyond one per module loaded are duplicates, listed in "warnings" (not a failure)."""
    failures = []
    out = dict(meta, closure=closure, modes={}, warnings=[])
    by_round = {}  # mode -> round (0-based) -> load ms, the boots without a problem
    for mode, figs in boots.items():
        ok = []
        if not figs:
            failures.append("%s/%s: no boot" % (name, mode))
        for i, f in enumerate(figs, 1):
            problems = boot_problems(mode, f, closure, traced)
            failures += ["%s/%s boot %d: %s" % (name, mode, i, p) for p in problems]
            if not problems:
                ok.append(f)
                by_round.setdefault(mode, {})[i - 1] = load_ms(mode, f)
        calls, dups = [], []
        for f in ok:
            c = load_syscalls(f)
            if c is not None:
                calls.append(c)
                dups.append(c - int(num(f["proc_modules"])))
        if any(dups):
            out["warnings"].append("%s/%s: duplicate load syscalls %s" % (
                name, mode, ",".join(map(str, dups))))
        out["modes"][mode] = {
            "boots": len(figs), "completed": len(ok),
            "load_ms": [load_ms(mode, f) for f in ok],
            "load_ms_median": median([load_ms(mode, f) for f in ok]),
            "span_ms_median": median([f.get("span_ms") for f in ok]),
            "workers": median([f.get("workers") for f in ok]),
            # What every boot that reported it loaded, measurement or not: a table showing 0
            # beside n/a says why.
            "proc_modules": sorted({int(num(f["proc_modules"])) for f in figs
                                    if num(f.get("proc_modules")) is not None}),
            "load_syscalls": calls,
            "duplicate_load_syscalls": dups,
            "already_loaded": [f.get("already_loaded") for f in ok if "already_loaded" in f],
            "pid1_rss_kb_median": median([num(f.get("pid1_rss_kb")) for f in ok]),
            "pid1_hwm_kb_median": median([num(f.get("pid1_hwm_kb")) for f in ok]),
            "pid1_threads": sorted({int(f["pid1_threads"]) for f in ok if "pid1_threads" in f}),
            "boot_s_median": median([f.get("boot_s") for f in figs]),
        }
        for k in ("packages_ms", "plan_ms", "hash_ms", "first_load_ms", "loads_ms"):
            out["modes"][mode]["phase_%s_median" % k] = median(
                [num(f.get("phase_" + k)) for f in ok])
    m = out["modes"]

    def operand(mode, key="load_ms_median"):
        return ("%s %s" % (mode, key), m.get(mode, {}).get(key))

    ratios = {"peinit/modprobe": ("peinit", "modprobe"), "peinit/loop": ("peinit", "loop"),
              "peinit/levels": ("peinit", "levels"),
              "peinit-w1/modprobe": ("peinit-w1", "modprobe"),
              "peinit/peinit-w1": ("peinit", "peinit-w1"), "modprobe/loop": ("modprobe", "loop")}
    out["ratios"] = {k: ratio("%s %s" % (name, k), operand(a), operand(b), failures)
                     for k, (a, b) in ratios.items()}
    # The same ratios round by round: the modes of a round boot one after the other, so a
    # host that drifts during the run moves both operands of a round alike (not the medians).
    out["round_ratios"] = {}
    for k, (a, b) in ratios.items():
        rounds = per_round(by_round.get(a, {}), by_round.get(b, {}))
        if rounds:
            out["round_ratios"][k] = {"rounds": rounds, "median": median(rounds)}
    span = operand("peinit", "span_ms_median")
    out["ratios"]["peinit load span/loop"] = ratio(name + " peinit load span/loop", span,
                                                   operand("loop"), failures)
    out["ratios"]["peinit load span/levels"] = ratio(name + " peinit load span/levels", span,
                                                     operand("levels"), failures)
    out["ratios"]["levels/loop"] = ratio(name + " levels/loop", operand("levels"),
                                         operand("loop"), failures)
    out["ratios"]["peinit before first load/stage"] = ratio(
        name + " peinit before first load/stage", operand("peinit", "phase_first_load_ms_median"),
        operand("peinit"), failures)
    if "peinit-tpm" in m:
        out["ratios"]["peinit-tpm/peinit"] = ratio(name + " peinit-tpm/peinit",
                                                   operand("peinit-tpm"), operand("peinit"),
                                                   failures, 3)
    return out, failures


def module_table(name, wl):
    """The table of one workload's summary (summarize), as lines."""
    lines = ["## Module stage, workload %s (%s kernel %s, %d modules in the closure, %s boots)"
             % (name, wl["kernel"], wl["kernel_release"], wl["closure"],
                wl["modes"]["peinit"]["boots"]),
             "| mode | load ms (median) | loads only ms | modules loaded | load syscalls | "
             "duplicates | PID 1 RSS kB | PID 1 threads |",
             "|---|---|---|---|---|---|---|---|"]
    for mode, m in wl["modes"].items():
        label = MODE_LABELS[mode] + (" (%d)" % m["workers"] if mode == "peinit" and
                                     m["workers"] else "")
        lines.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
            label, fmt(m["load_ms_median"]), fmt(m["span_ms_median"]),
            ",".join(map(str, m["proc_modules"])) or "n/a",
            ",".join(map(str, sorted(set(m["load_syscalls"])))) or "n/a",
            ",".join(map(str, sorted(set(m["duplicate_load_syscalls"])))) or "n/a",
            fmt(m["pid1_rss_kb_median"]), ",".join(map(str, m["pid1_threads"])) or "n/a"))
    lines.append("ratios: " + ", ".join("%s = %s" % (k, fmt(v)) for k, v in wl["ratios"].items()))
    if wl.get("round_ratios"):
        lines.append("ratios per round (median; each round): " + ", ".join(
            "%s = %s (%s)" % (k, fmt(v["median"]), ", ".join(fmt(r) for r in v["rounds"]))
            for k, v in wl["round_ratios"].items()))
    p = wl["modes"].get("peinit", {})
    lines.append("peinit stage phases (medians, ms): packages read + signatures %s, plan %s, "
                 "hashing the plan's members %s, first load starts at %s, loads span %s; "
                 "dependency levels: %s" % (
                     fmt(p.get("phase_packages_ms_median")), fmt(p.get("phase_plan_ms_median")),
                     fmt(p.get("phase_hash_ms_median")), fmt(p.get("phase_first_load_ms_median")),
                     fmt(p.get("phase_loads_ms_median")), wl.get("levels")))
    return lines


# ---------------------------------------------------------------------------------------------
# Image build: peinit-image vs mkinitramfs vs dracut, Debian's kernel, the real module set.

def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def in_kernel_namespace(debian_root, kver, script):
    """Runs `script` (sh) in a private mount namespace whose /lib/modules/KVER and
    /boot/config-KVER are Debian's kernel fixture: mkinitramfs and dracut read those fixed
    paths, and the host's own directories stay untouched (an empty /lib/modules is created as
    the mount point when the host has none)."""
    wrapper = r"""
set -e
mount --make-rprivate /
[ -d /lib/modules ] || mkdir /lib/modules
mount -t tmpfs bench-modules /lib/modules
mkdir /lib/modules/{kver}
mount --bind {root}/lib/modules/{kver} /lib/modules/{kver}
mount -t tmpfs bench-boot /boot
cp {root}/boot/config-{kver} {root}/boot/System.map-{kver} /boot/ 2>/dev/null || true
{script}
""".format(root=debian_root, kver=kver, script=script)
    return subprocess.run(["unshare", "--mount", "sh", "-c", wrapper], capture_output=True,
                          text=True)


def timed_builds(name, build, outputs, n):
    """Runs build(out) for each of n outputs; returns times, sizes, hashes."""
    times, sizes, hashes = [], [], []
    for out in outputs[:n]:
        t0 = time.monotonic()
        err = build(out)
        dt = time.monotonic() - t0
        if err:
            log("%s build failed: %s" % (name, err[-2000:]))
            return {"error": err[-2000:]}
        times.append(round(dt, 2))
        sizes.append(os.path.getsize(out))
        hashes.append(sha256(out))
        log("%s build: %.2f s, %d bytes, sha256 %s" % (name, dt, sizes[-1], hashes[-1][:16]))
    listing = subprocess.run(["lsinitramfs", outputs[0]], capture_output=True, text=True).stdout
    kos = sum(1 for line in listing.splitlines() if line.endswith(".ko"))
    return {"seconds": times, "seconds_median": median(times), "bytes": sizes[-1],
            "reproducible": len(set(hashes)) == 1, "sha256": hashes, "module_files": kos,
            "entries": len(listing.splitlines())}


def bench_image(args, work, results):
    root = os.environ["PEINIT_DEBIAN_KERNEL_DIR"]
    kver = kver_of(root)
    d = os.path.join(work, "image")
    os.makedirs(d, exist_ok=True)
    env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
    n = args.image_builds
    w = Workload("real", "debian", root, real_modules(args), [], 1024, [], [])
    defn = os.path.join(d, "peinit-def")
    write_image(defn, w, "peinit", loose=False, probe=False)
    out = {"kernel_release": kver, "modules": w.modules, "source_date_epoch": 1700000000}

    def peinit_build(o):
        p = subprocess.run([image_tool(), "build", defn, "-o", o, "--kernel-dir", root],
                           capture_output=True, text=True, env=env)
        return None if p.returncode == 0 else p.stdout + p.stderr
    out["peinit-image"] = timed_builds("peinit-image", peinit_build,
                                       [os.path.join(d, "peinit-%d.img" % i) for i in range(n)], n)

    # initramfs-tools: its configuration, with MODULES=list and the same module list.
    conf = os.path.join(d, "initramfs-tools")
    shutil.rmtree(conf, ignore_errors=True)
    shutil.copytree("/etc/initramfs-tools", conf)
    with open(os.path.join(conf, "initramfs.conf"), "a") as f:
        f.write("\nMODULES=list\nCOMPRESS=zstd\n")
    with open(os.path.join(conf, "modules"), "w") as f:
        f.write("\n".join(w.modules) + "\n")

    def mkinitramfs_build(o):
        p = in_kernel_namespace(root, kver, "SOURCE_DATE_EPOCH=1700000000 mkinitramfs -d %s -o %s %s"
                                % (conf, o, kver))
        return None if p.returncode == 0 else p.stdout + p.stderr
    out["mkinitramfs"] = timed_builds("mkinitramfs", mkinitramfs_build,
                                      [os.path.join(d, "mkinitramfs-%d.img" % i) for i in range(n)],
                                      n)

    def dracut_build(o):
        p = in_kernel_namespace(
            root, kver,
            "SOURCE_DATE_EPOCH=1700000000 dracut --quiet --force --no-hostonly --reproducible "
            "--zstd --no-early-microcode -m 'base' --drivers '%s' --kver %s %s"
            % (" ".join(w.modules), kver, o))
        return None if p.returncode == 0 else p.stdout + p.stderr
    out["dracut"] = timed_builds("dracut", dracut_build,
                                 [os.path.join(d, "dracut-%d.img" % i) for i in range(n)], n)
    pm = out["peinit-image"].get("seconds_median")
    for other in ("mkinitramfs", "dracut"):
        om = out[other].get("seconds_median")
        out["peinit-image/" + other] = ratio(
            "peinit-image/" + other, ("peinit-image build seconds (median)", pm),
            ("%s build seconds (median)" % other, om), results["failures"], 3)
    results["image"] = out


def bench_compressed(args, work, results):
    root = os.environ["PEINIT_DEBIAN_KERNEL_DIR"]
    kver = kver_of(root)
    w = workloads(argparse.Namespace(workloads=["real"], modules=real_modules(args)))[0]
    d = os.path.join(work, "compressed")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    deps = run(["modprobe", "-d", root, "-S", kver, "-a", "--show-depends"] + w.modules,
               capture_output=True).stdout
    closure = sorted({line.split()[1] for line in deps.splitlines()
                      if line.startswith("insmod ")})
    out = {"kernel_release": kver, "modules": len(closure), "boots": args.boots, "formats": {}}
    trees = {}
    for fmt_, tool in (("ko", None), ("xz", ["xz", "-q", "-f", "--check=crc32"]),
                       ("zst", ["zstd", "-q", "-f", "-19", "--rm"])):
        tree = os.path.join(d, fmt_)
        os.makedirs(os.path.join(tree, "lib", "modules"))
        os.makedirs(os.path.join(tree, "boot"))
        shutil.copy(os.path.join(root, "kver"), tree)
        os.symlink(os.path.join(root, "boot", "vmlinuz-" + kver),
                   os.path.join(tree, "boot", "vmlinuz-" + kver))
        # Hard links: compressing one (the tool unlinks it) leaves the fixture untouched.
        run(["cp", "-al", os.path.join(root, "lib", "modules", kver),
             os.path.join(tree, "lib", "modules")])
        size = 0
        for path in closure:
            mine = os.path.join(tree, os.path.relpath(path, root))
            if tool:
                run(tool + [mine])
                mine += "." + fmt_
            size += os.path.getsize(mine)
        run(["depmod", "-b", tree, kver])
        defn = os.path.join(d, fmt_ + "-def")
        write_image(defn, w, "peinit", loose=False, traced=False)
        trees[fmt_] = (tree, defn)
        out["formats"][fmt_] = {"closure_bytes": size, "stage_ms": []}
    for i in range(args.boots):
        for fmt_, (tree, defn) in trees.items():
            results_file = os.path.join(d, "%s-%d.results" % (fmt_, i + 1))
            p = subprocess.run([image_tool(), "boot", defn, "--kernel-dir", tree, "--timeout",
                                "600", "--results", results_file,
                                "--output", os.path.join(d, fmt_ + ".cpio")],
                               capture_output=True, text=True)
            fig = parse_boot(p.stdout, read_text(results_file))
            fig["exit"] = p.returncode
            problems = boot_problems("peinit", fig, len(closure), False)
            log("compressed %s boot %d: stage %s ms, ok=%s%s" % (
                fmt_, i + 1, fig.get("stage_ms"), fig.get("stage_ok"),
                "; " + "; ".join(problems) if problems else ""))
            results["failures"] += ["compressed .%s boot %d: %s" % (fmt_, i + 1, problem)
                                    for problem in problems]
            # Only a boot that loaded the closure is a measurement.
            out["formats"][fmt_]["stage_ms"].append(None if problems else fig.get("stage_ms"))
    for f in out["formats"].values():
        f["stage_ms_median"] = median(f["stage_ms"])
    base = out["formats"]["ko"]["stage_ms_median"]
    for fmt_ in ("xz", "zst"):
        m = out["formats"][fmt_]["stage_ms_median"]
        out[fmt_ + "/ko"] = ratio("compressed %s/ko" % fmt_, (".ko.%s stage ms (median)" % fmt_, m),
                                  (".ko stage ms (median)", base), results["failures"], 3)
    results["compressed"] = out


REALROOT_UUID = "5eb0c3f6-1c8a-4f0e-9d52-0000000be7c4"
STAMP = re.compile(r"^\[\s*(\d+\.\d+)\]\s?(.*)$")


def stamped(output, needle):
    """Seconds (printk timestamp) of the first console line containing needle."""
    for line in output.splitlines():
        m = STAMP.match(line.replace("\r", ""))
        if m and needle in m.group(2):
            return float(m.group(1))
    return None


def bench_realroot(args, work, results):
    root = os.environ["PEINIT_DEBIAN_KERNEL_DIR"]
    kver = kver_of(root)
    d = os.path.join(work, "realroot")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    disk = os.path.join(d, "disk.img")
    # The root's init= is the probe as bench-real-init: one kmsg line, then exec systemd. Both
    # initramfs images hand over to it, so "Run /init" to that line is each one's own time.
    add = os.path.join(d, "add")
    os.makedirs(os.path.join(add, "usr/local/sbin"))
    shutil.copy(os.path.join(os.environ["PEINIT_BUILD_DIR"], "tests/bench/bench_probe"),
                os.path.join(add, "usr/local/sbin/bench-real-init"))
    run([os.path.join(REPO, "tests/realroot/make-disk"), "--root",
         os.path.join(os.environ["PEINIT_REALROOT_DIR"], "root"), "--add", add, "--out", disk,
         "--uuid", REALROOT_UUID])
    # peinit: the root's drivers from the signed package, the lock, the handoff.
    defn = os.path.join(d, "peinit-def")
    os.makedirs(os.path.join(defn, "units"))
    with open(os.path.join(defn, "hive.toml"), "w") as f:
        f.write("[Machine.System.Modules]\nLockAfterBoot = true\nAutoLoadPolicy = \"disabled\"\n")
    with open(os.path.join(defn, "units", "root.toml"), "w") as f:
        f.write("".join('[[module]]\nname = "%s"\n\n' % m
                        for m in ("virtio_pci", "virtio_blk", "ext4")))
    with open(os.path.join(defn, "image.toml"), "w") as f:
        f.write('kernel = "debian"\nunits = ["units"]\nhive = "hive.toml"\ncompression = "zstd"\n')
    images = {"peinit": os.path.join(d, "peinit.img"),
              "initramfs-tools": os.path.join(d, "initramfs-tools.img")}
    if args.tpm:  # the same image, measuring into a TPM
        images["peinit-tpm"] = images["peinit"]
    run([image_tool(), "build", defn, "-o", images["peinit"], "--kernel-dir", root],
        capture_output=True)
    p = in_kernel_namespace(root, kver, "mkinitramfs -o %s %s" % (images["initramfs-tools"], kver))
    if p.returncode != 0:
        log("mkinitramfs failed: " + (p.stdout + p.stderr)[-2000:])
        return
    vmlinuz = os.path.join(root, "boot", "vmlinuz-" + kver)
    append = ("console=ttyS0 panic=-1 root=UUID=%s rw systemd.unit=poweroff.target "
              "systemd.show_status=0 init=/usr/local/sbin/bench-real-init" % REALROOT_UUID)
    out = {"kernel_release": kver, "boots": args.boots, "modes": {}}
    figures = {m: {"init_to_real_init_s": [], "init_to_systemd_s": [], "init_to_lock_s": [],
                   "kernel_to_systemd_s": []}
               for m in images}
    stage_ms = {}  # peinit's stages: mode -> name -> [ms per boot]
    by_round = {}  # mode -> round -> Run /init -> real init (s), the boots measured
    for i in range(args.boots):
        for mode, img in images.items():  # interleaved, round-robin
            cmd = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "q35", "-cpu", "max",
                   "-m", "1024", "-smp", "2", "-nographic", "-no-reboot", "-serial", "mon:stdio",
                   "-kernel", vmlinuz, "-initrd", img, "-append", append,
                   "-drive", "file=%s,if=virtio,format=raw,snapshot=on" % disk]

            def boot():  # a fresh TPM for each boot (swtpm ends with QEMU)
                with Swtpm(d) if mode == "peinit-tpm" else contextlib.nullcontext() as tpm:
                    return run_boot(cmd + (tpm.qemu_args if tpm else []), 600)

            output = boot_with_retry(boot, "realroot %s boot %d" % (mode, i + 1), results)[0]
            with open(os.path.join(d, "%s-boot-%d.log" % (mode, i + 1)), "w") as logf:
                logf.write(output)  # kept for reading the phases after a run
            start = stamped(output, "Run /init as init process")
            first = stamped(output, "systemd[1]: systemd ")
            lock = stamped(output, "peinit: lockdown locked=1")
            real = stamped(output, "peinit-bench: real init starts")
            log("realroot %s boot %d: Run /init %s, real init %s, systemd %s, lock %s"
                % (mode, i + 1, start, real, first, lock))
            f = figures[mode]
            if mode.startswith("peinit"):
                measured = measure_parse(output)
                problems = measure_problems(mode, measured, None)
                if mode == "peinit-tpm" and not re.search(r"peinit: measure: leave-initrd", output):
                    problems.append("leave-initrd not measured")
                if problems:
                    results["failures"] += ["realroot %s boot %d: %s" % (mode, i + 1, p)
                                            for p in problems]
                    continue
            if start is not None and real is not None:
                f["init_to_real_init_s"].append(round(real - start, 3))
                by_round.setdefault(mode, {})[i] = real - start
            if mode.startswith("peinit"):
                stages = stage_ms.setdefault(mode, {})
                for m in re.finditer(r"peinit: stage (\S+) done \S+ ms=(\d+)", output):
                    stages.setdefault(m.group(1), []).append(int(m.group(2)))
                # Inside the module stage: until the first load, and the loads themselves.
                for m in re.finditer(r"peinit: modules done .*first_load_ms=(\d+) loads_ms=(\d+)",
                                     output):
                    stages.setdefault("modules:first-load", []).append(int(m.group(1)))
                    stages.setdefault("modules:loads", []).append(int(m.group(2)))
            if start is not None and first is not None:
                f["init_to_systemd_s"].append(round(first - start, 3))
                f["kernel_to_systemd_s"].append(round(first, 3))
            if start is not None and lock is not None:
                f["init_to_lock_s"].append(round(lock - start, 3))
    for mode, f in figures.items():
        out["modes"][mode] = dict(f, **{k + "_median": median(v) for k, v in f.items()})
    for key in ("init_to_real_init_s", "init_to_systemd_s"):
        for a, b in (("peinit", "initramfs-tools"), ("peinit-tpm", "peinit")):
            if a not in out["modes"]:
                continue
            out["%s/%s %s" % (a, b, key)] = ratio(
                "realroot %s/%s %s" % (a, b, key),
                ("%s %s (median)" % (a, key), out["modes"][a].get(key + "_median")),
                ("%s %s (median)" % (b, key), out["modes"][b].get(key + "_median")),
                results["failures"], 3)
    rounds = per_round(by_round.get("peinit", {}), by_round.get("initramfs-tools", {}))
    if rounds:
        out["peinit/initramfs-tools init_to_real_init_s per round"] = {
            "rounds": rounds, "median": median(rounds)}
    for mode, stages in stage_ms.items():
        out[mode + "_stage_ms_median"] = {k: median(v) for k, v in stages.items()}
    results["realroot"] = out


class Swtpm:
    """A private swtpm (TPM 2.0 emulator) with a fresh state for one QEMU boot, as
    `peinit-image boot --tpm` starts it; `qemu_args` attach it as the guest's TPM (tpm-tis)."""

    def __init__(self, parent):
        self.dir = tempfile.mkdtemp(prefix="swtpm.", dir=parent)
        sock = os.path.join(self.dir, "swtpm.sock")
        os.makedirs(os.path.join(self.dir, "state"))
        self.proc = subprocess.Popen(
            ["swtpm", "socket", "--tpm2", "--tpmstate", "dir=" + os.path.join(self.dir, "state"),
             "--ctrl", "type=unixio,path=" + sock, "--terminate"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(1000):
            if os.path.exists(sock) or self.proc.poll() is not None:
                break
            time.sleep(0.02)
        if not os.path.exists(sock):
            self.close()
            raise RuntimeError("swtpm did not start (is it installed?)")
        self.qemu_args = ["-chardev", "socket,id=chrtpm,path=" + sock, "-tpmdev",
                          "emulator,id=tpm0,chardev=chrtpm", "-device", "tpm-tis,tpmdev=tpm0"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def host_sha256_mb_s():
    """SHA-256 throughput of this host's CPU (OpenSSL through hashlib, SHA extensions when the
    CPU has them), beside the guest figures: QEMU's emulated CPU has none."""
    data = os.urandom(64 << 20)
    best = None
    for _ in range(3):
        t0 = time.perf_counter()
        hashlib.sha256(data).digest()
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return round(64 / best, 1)


def host_cpu_sample():
    """The host's CPU time so far, in seconds: busy (user, nice, system, irq, softirq of
    /proc/stat) and stolen by the hypervisor, and the part of it that is the benchmark's own (this
    process and every descendant it has waited for: the boots, QEMU, the builders)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    hz = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
    own = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        r = resource.getrusage(who)
        own += r.ru_utime + r.ru_stime
    return {"wall": time.monotonic(), "busy": (user + nice + system + irq + softirq) / hz,
            "steal": steal / hz, "own": own}


# Above these shares of the host's CPUs (other processes, hypervisor steal) a part's figures are
# flagged as taken on a busy host.
HOST_OTHER_CPU_WARN_PCT = 5.0
HOST_STEAL_WARN_PCT = 5.0


def host_load(part, before, after, cpus):
    """What else the host did while `part` ran, between two host_cpu_sample()s, as percentages of
    its CPU capacity over that time, and a warning when that makes the figures incomparable
    (None otherwise). TCG's vCPUs are host threads: anything else running slows the guest."""
    capacity = max(after["wall"] - before["wall"], 1e-9) * cpus
    other = (after["busy"] - before["busy"]) - (after["own"] - before["own"])
    load = {"other_cpu_pct": round(max(other, 0.0) / capacity * 100, 1),
            "steal_pct": round(max(after["steal"] - before["steal"], 0.0) / capacity * 100, 1)}
    warning = None
    if (load["other_cpu_pct"] > HOST_OTHER_CPU_WARN_PCT
            or load["steal_pct"] > HOST_STEAL_WARN_PCT):
        warning = ("the host was busy during the %s part: other processes used %.1f %% of its "
                   "CPUs and the hypervisor stole %.1f %%; its figures are not comparable with "
                   "a run on an idle host" % (part, load["other_cpu_pct"], load["steal_pct"]))
    return load, warning


def measured_part(part, results, fn):
    """Runs one part, recording in results["host_load"] what else the host did meanwhile."""
    before = host_cpu_sample()
    fn()
    load, warning = host_load(part, before, host_cpu_sample(), os.cpu_count() or 1)
    results.setdefault("host_load", {})[part] = load
    if warning:
        results["warnings"].append(warning)


def bench_footprint(results):
    build = os.environ["PEINIT_BUILD_DIR"]
    out = {}
    results["host_sha256_mb_s"] = host_sha256_mb_s()
    for name, rel in (("peinit", "peinit/peinit"), ("peinitctl", "peinit/tools/peinitctl")):
        path = os.path.join(build, rel)
        stripped = path + ".bench-stripped"
        run(["strip", "--strip-debug", "-o", stripped, path])
        out[name] = {"bytes": os.path.getsize(path), "stripped_bytes": os.path.getsize(stripped)}
        os.unlink(stripped)
    results["footprint"] = out


# ---------------------------------------------------------------------------------------------

def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return ("%.0f" % v if abs(v) >= 100 else "%.2f" % v) + unit
    return str(v) + unit


def print_tables(results):
    print()
    for name, wl in results.get("modules", {}).items():
        print("\n".join(module_table(name, wl)))
        print()
    if "image" in results:
        im = results["image"]
        print("## Image build (Debian kernel %s, modules %s)" % (im["kernel_release"],
                                                                 " ".join(im["modules"])))
        print("| builder | wall s (median) | output bytes | entries | .ko files | reproducible |")
        print("|---|---|---|---|---|---|")
        for b in ("peinit-image", "mkinitramfs", "dracut"):
            r = im[b]
            if "error" in r:
                print("| %s | failed | | | | |" % b)
            else:
                print("| %s | %s | %d | %d | %d | %s |" % (
                    b, fmt(r["seconds_median"]), r["bytes"], r["entries"], r["module_files"],
                    "yes" if r["reproducible"] else "no"))
        print("ratios: peinit-image/mkinitramfs = %s, peinit-image/dracut = %s" %
              (fmt(im["peinit-image/mkinitramfs"]), fmt(im["peinit-image/dracut"])))
        print()
    if "compressed" in results:
        c = results["compressed"]
        print("## Compressed modules (Debian kernel %s, `real` workload: %d modules, %d boots)"
              % (c["kernel_release"], c["modules"], c["boots"]))
        print("| module files | closure bytes | module stage ms (median) |")
        print("|---|---|---|")
        for fmt_, f in c["formats"].items():
            print("| .%s | %d | %s |" % ("ko" if fmt_ == "ko" else "ko." + fmt_,
                                        f["closure_bytes"], fmt(f["stage_ms_median"])))
        print("ratios: .ko.xz/.ko = %s, .ko.zst/.ko = %s" % (fmt(c["xz/ko"]), fmt(c["zst/ko"])))
        print()
    if "realroot" in results:
        rr = results["realroot"]
        print("## Real root (Debian kernel %s, Debian 12 systemd root, root=UUID=, %d boots)"
              % (rr["kernel_release"], rr["boots"]))
        print("| initramfs | Run /init -> real init s (median) | Run /init -> systemd's first "
              "line s | Run /init -> lock s | kernel start -> systemd s |")
        print("|---|---|---|---|---|")
        for mode, m in rr["modes"].items():
            print("| %s | %s | %s | %s | %s |" % (
                mode, fmt(m.get("init_to_real_init_s_median")),
                fmt(m.get("init_to_systemd_s_median")), fmt(m.get("init_to_lock_s_median")),
                fmt(m.get("kernel_to_systemd_s_median"))))
        print("ratios: peinit/initramfs-tools (Run /init -> real init, the time in the "
              "initramfs) = %s; (Run /init -> systemd's first line) = %s"
              % (fmt(rr["peinit/initramfs-tools init_to_real_init_s"]),
                 fmt(rr["peinit/initramfs-tools init_to_systemd_s"])))
        per = rr.get("peinit/initramfs-tools init_to_real_init_s per round")
        if per:
            print("per round (Run /init -> real init): median %s (%s)" % (
                fmt(per["median"]), ", ".join(fmt(r) for r in per["rounds"])))
        if "peinit-tpm/peinit init_to_real_init_s" in rr:
            print("measured boot: peinit-tpm/peinit (Run /init -> real init) = %s"
                  % fmt(rr["peinit-tpm/peinit init_to_real_init_s"]))
        for mode in ("peinit", "peinit-tpm"):
            if mode not in rr["modes"]:
                continue  # not booted (--no-tpm)
            print("%s stages (medians, ms): " % mode + ", ".join(
                "%s %s" % (k, fmt(v)) for k, v in rr.get(mode + "_stage_ms_median", {}).items()))
        print()
    if results.get("host_load"):
        print("Host during the run (share of its CPUs; the benchmark's own processes excluded): "
              + "; ".join("%s: other processes %.1f %%, stolen %.1f %%"
                          % (part, v["other_cpu_pct"], v["steal_pct"])
                          for part, v in results["host_load"].items()))
    if "host_sha256_mb_s" in results:
        print("Host SHA-256 (native CPU, OpenSSL): %s MB/s" % fmt(results["host_sha256_mb_s"]))
    if "footprint" in results:
        print("## Footprint")
        for name, f in results["footprint"].items():
            print("%s: %d bytes, %d stripped" % (name, f["bytes"], f["stripped_bytes"]))
        print()


def main():
    ap = argparse.ArgumentParser(prog="tests/bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boots", type=int, default=5, help="boots per mode and workload (5)")
    ap.add_argument("--image-builds", type=int, default=3, help="builds per image builder (3)")
    ap.add_argument("--only", action="append",
                    choices=["modules", "image", "footprint", "compressed", "realroot"],
                    help="run only this part (repeatable; default: all)")
    ap.add_argument("--workloads", default="real,slow",
                    help="comma-separated module workloads: real, slow (default both)")
    ap.add_argument("--modules", type=module_list, metavar="LIST",
                    help="the top-level modules of the `real` workload and of the image and "
                    "compressed parts, from Debian's kernel, separated by commas or spaces "
                    "(default: the 27 of REAL_MODULES); their dependencies and soft "
                    "dependencies are added as for the default set")
    ap.add_argument("--no-tpm", dest="tpm", action="store_false",
                    help="skip the boots with a TPM (peinit-tpm in the modules and realroot parts)")
    ap.add_argument("--json", help="where to write the results (default: "
                    "$PEINIT_BUILD_DIR/bench/results.json)")
    args = ap.parse_args()
    args.workloads = args.workloads.split(",")
    parts = args.only or ["modules", "image", "footprint", "compressed", "realroot"]
    build = os.environ["PEINIT_BUILD_DIR"]
    work = os.path.join(build, "bench")
    os.makedirs(work, exist_ok=True)
    results = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
               "host_cpus": os.cpu_count(), "qemu": "TCG, -smp 2", "modules": {},
               "failures": [], "warnings": []}
    if "footprint" in parts:
        bench_footprint(results)
    for part, fn in (("image", bench_image), ("modules", bench_modules),
                     ("compressed", bench_compressed), ("realroot", bench_realroot)):
        if part in parts:
            measured_part(part, results, lambda: fn(args, work, results))
    path = args.json or os.path.join(work, "results.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2, sort_keys=True)
    print_tables(results)
    print("JSON: " + path)
    for warning in results["warnings"] + [w for wl in results["modules"].values()
                                          for w in wl["warnings"]]:
        log("warning: " + warning)
    if results["failures"]:
        for failure in results["failures"]:
            log("FAILED: " + failure)
        log("%d failures: these figures are not a measurement" % len(results["failures"]))
        sys.exit(1)


if __name__ == "__main__":
    main()
