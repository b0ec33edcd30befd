"""Helpers shared by the benchmark scripts in this folder."""


def load_note() -> str:
    "Machine load right now (other processes share the cores, so timings are noisy)."
    try:
        la = open("/proc/loadavg").read().split()[0]
        psi = open("/proc/pressure/cpu").read().split()[1].split("=")[1]
        return f"load {la}, CPU pressure {psi}%"
    except (OSError, IndexError): return "load unknown"
