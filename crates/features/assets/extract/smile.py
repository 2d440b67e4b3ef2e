"""openSMILE functionals of a list of audio files, through the library opensmile-python ships.

Run by `emocycle extract` (this file is embedded in the binary): it loads libSMILEapi from the
installed `opensmile` wheel with ctypes, without importing the package (whose imports need
pandas and audinterface), and runs one of the wheel's configurations on each file with
openSMILE's own wave reader and emocycle's CSV sink, so the rows come out in SMILExtract's CSV
layout (`name;frameTime;<features>`).

    python smile.py CONFIG SINK LIST OUTPUT

CONFIG is the configuration's path below the wheel's `core/config/` (or an absolute path), SINK the sink include,
LIST a UTF-8 file of `<id>\t<path>\t<start>\t<end>` lines (start and end in seconds, empty
for the whole file), OUTPUT the CSV to write (the header comes with the
first file). One line `done <n>` per finished file goes to stdout. A file openSMILE cannot
read ends the run: the file and openSMILE's message go to stderr and the exit status is 1. (The
library cannot be trusted to go on in the same process after a failed file: with some
configurations it then frees memory twice. `emocycle extract --skip-unreadable` starts a new
process after the file instead.)
"""

import ctypes
import importlib.util
import os
import platform
import sys


def library_root():
    spec = importlib.util.find_spec("opensmile")
    if spec is None or not spec.submodule_search_locations:
        sys.exit(
            "error: the Python package opensmile is not installed in "
            f"{sys.prefix} (run `just setup`)"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "core")


def load(root):
    if platform.system() != "Linux":
        sys.exit("error: emocycle extract runs openSMILE on Linux only")
    machine = platform.machine().lower()
    path = os.path.join(root, "bin", f"manylinux_2_17_{machine}", "libSMILEapi.so")
    if not os.path.isfile(path):
        sys.exit(f"error: {path} is missing from the opensmile package")
    lib = ctypes.cdll.LoadLibrary(path)
    lib.smile_new.restype = ctypes.c_void_p
    lib.smile_initialize.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_void_p,
    ]
    lib.smile_initialize.restype = ctypes.c_int
    lib.smile_run.argtypes = [ctypes.c_void_p]
    lib.smile_run.restype = ctypes.c_int
    lib.smile_free.argtypes = [ctypes.c_void_p]
    lib.smile_free.restype = None
    lib.smile_error_msg.argtypes = [ctypes.c_void_p]
    lib.smile_error_msg.restype = ctypes.c_char_p
    return lib


def main():
    config, sink, listing, output = sys.argv[1:5]
    root = library_root()
    lib = load(root)
    shared = os.path.join(root, "config", "shared")
    config_path = os.path.join(root, "config", config)
    if not os.path.isfile(config_path):
        sys.exit(f"error: the openSMILE configuration {config_path} does not exist")
    with open(listing, encoding="utf-8") as rows:
        files = [line.rstrip("\n").split("\t") for line in rows if line.strip()]
    for number, (utterance, path, start, end) in enumerate(files):
        options = {
            "source": os.path.join(shared, "standard_wave_input.conf.inc"),
            "sink": sink,
            "bufferModeRbConf": os.path.join(shared, "BufferModeRb.conf.inc"),
            "frameModeFunctionalsConf": os.path.join(shared, "FrameModeFunctionals.conf.inc"),
            "filename": path,
            "emocycle_output": output,
            "emocycle_append": "0" if number == 0 else "1",
            "emocycle_header": "1" if number == 0 else "0",
            "emocycle_name": utterance,
        }
        if start:
            options["start"] = start
            options["end"] = end
        flat = [str(text).encode("utf-8") for pair in options.items() for text in pair]
        array = (ctypes.c_char_p * (len(flat) + 1))(*flat, None)
        smile = lib.smile_new()
        if not smile:
            sys.exit("error: openSMILE could not create an instance")
        step = "read"
        status = lib.smile_initialize(
            smile, config_path.encode("utf-8"), len(options), array, 0, 0, 0, None
        )
        if status == 0:
            step, status = "process", lib.smile_run(smile)
        if status != 0:
            message = lib.smile_error_msg(smile)
            detail = f": {message.decode('utf-8', 'replace')}" if message else ""
            sys.stderr.write(
                f"error: {path}: openSMILE could not {step} it (status {status}){detail}\n"
            )
            sys.stderr.flush()
            # Not smile_free: after a failed start it can abort the process.
            os._exit(1)
        lib.smile_free(smile)
        print(f"done {number + 1}", flush=True)


if __name__ == "__main__":
    main()
