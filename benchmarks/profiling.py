"""What the profilers' child processes share (``profile_ingest``, ``profile_report``): put before
their own code, it gives them ``memory()``, step timers (``marked``) and a count of every s3fs
request by the phase it ran in (``count_s3_calls``), in ``times`` and ``calls``."""

CHILD_HELPERS = r"""
import threading, time

def memory():
    fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}

phase = ["other"]
times = {}
calls = {}

def marked(module, name, label):
    function = getattr(module, name)
    def wrapper(*args, **kwargs):
        outer = phase[0]
        phase[0] = label
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            times[label] = times.get(label, 0.0) + time.perf_counter() - started
            phase[0] = outer
    setattr(module, name, wrapper)

def count_s3_calls(fs):
    if fs is None:
        return
    import s3fs.core
    original = s3fs.core.S3FileSystem._call_s3
    lock = threading.Lock()
    async def counted(self, method, *args, **kwargs):
        started = time.perf_counter()
        try:
            return await original(self, method, *args, **kwargs)
        finally:
            with lock:
                entry = calls.setdefault(phase[0], {}).setdefault(method, [0, 0.0])
                entry[0] += 1
                entry[1] += time.perf_counter() - started
    s3fs.core.S3FileSystem._call_s3 = counted
"""
