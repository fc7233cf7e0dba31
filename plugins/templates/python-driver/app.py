"""{{name}}: a Berth storage driver in Python that keeps every file in this
instance's memory. It passes the whole conformance suite (./test.sh), so it
is a working starting point: replace the store below with calls to your own,
keeping the semantics each function's comment in wit/storage.wit asks for,
and run ./test.sh after each change.

How the WIT types look from Python (componentize-py): u64 is int, list<u8>
bytes, option<T> T or None, records and variants the classes of
wit_world.imports.types; a `result<T, error>` is T returned, or `Err(error)`
raised. Paths reaching the driver are already checked by the host: absolute,
`/`-separated, no `.` or `..`. A directory exists exactly when some file is
below it, and `/` always exists.
"""

import bisect
import time

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import driver
from wit_world.imports.host import Level, log
from wit_world.imports.types import (
    DriverInfo,
    Error_Backend,
    Error_PathNotFound,
    FileInfo,
    InstanceModel,
)


class File:
    __slots__ = ("data", "modified_ns")

    def __init__(self) -> None:
        self.data = bytearray()
        self.modified_ns = time.time_ns()


# Path -> File, and the paths in order (for listings and walks). They live as
# long as the instance, which is as long as the process because `describe`
# asks for a resident instance.
FILES: dict[str, File] = {}
PATHS: list[str] = []


def not_found(path: str) -> Err:
    return Err(Error_PathNotFound(path))


def backend(message: str) -> Err:
    return Err(Error_Backend(message))


def dir_prefix(path: str) -> str:
    return path.rstrip("/") + "/"


def below(prefix: str):
    """The paths of files whose path starts with `prefix`, in order."""
    i = bisect.bisect_left(PATHS, prefix)
    while i < len(PATHS) and PATHS[i].startswith(prefix):
        yield PATHS[i]
        i += 1


def is_dir(path: str) -> bool:
    return path == "/" or next(below(dir_prefix(path)), None) is not None


def file(path: str) -> File:
    found = FILES.get(path)
    if found is None:
        raise backend(f"{path} is a directory") if is_dir(path) else not_found(path)
    return found


def check_creatable(path: str) -> None:
    if is_dir(path):
        raise backend(f"{path} is a directory")
    end = path.find("/", 1)
    while end != -1:
        if path[:end] in FILES:
            raise backend(f"{path[:end]} is a file")
        end = path.find("/", end + 1)


def insert(path: str, entry: File) -> None:
    if path not in FILES:
        bisect.insort(PATHS, path)
    FILES[path] = entry


def remove(path: str) -> File | None:
    entry = FILES.pop(path, None)
    if entry is not None:
        del PATHS[bisect.bisect_left(PATHS, path)]
    return entry


def info(path: str, entry: File) -> FileInfo:
    return FileInfo(path=path, size=len(entry.data), modified_ns=entry.modified_ns, is_dir=False)


class Driver(exports.Driver):
    def describe(self) -> DriverInfo:
        return DriverInfo(
            # RESIDENT: one instance for the whole process, so the memory
            # above survives between calls. A driver whose data lives
            # elsewhere answers PER_CALL.
            instance_model=InstanceModel.RESIDENT,
            # Name a parameter here to be given that host directory.
            directory_parameter=None,
            # Or describe how this driver reaches its service over HTTP.
            network=None,
        )

    def init(self, parameters: list[tuple[str, str]]) -> None:
        # The entries under `storage:` -> `{{name}}:` in the registry
        # configuration, as strings. Check yours here.
        if parameters:
            raise backend(f"unknown parameter {parameters[0][0]!r}: the {{name}} driver takes no parameters")
        log(Level.DEBUG, "{{name}} initialised")

    def get_content(self, path: str) -> bytes:
        return bytes(file(path).data)

    def put_content(self, path: str, content: bytes) -> None:
        check_creatable(path)
        entry = File()
        entry.data = bytearray(content)
        insert(path, entry)

    def reader(self, path: str, offset: int) -> driver.FileReader:
        file(path)
        return FileReader(path, offset)

    def writer(self, path: str, append: bool) -> driver.FileWriter:
        check_creatable(path)
        entry = FILES.get(path)
        if entry is None:
            entry = File()
            insert(path, entry)
        if not append:
            entry.data = bytearray()
        entry.modified_ns = time.time_ns()
        return FileWriter(path)

    def stat(self, path: str) -> FileInfo:
        entry = FILES.get(path)
        if entry is not None:
            return info(path, entry)
        newest = max((FILES[p].modified_ns for p in below(dir_prefix(path))), default=None)
        if newest is None and path != "/":
            raise not_found(path)
        return FileInfo(path=path, size=0, modified_ns=newest or 0, is_dir=True)

    def list(self, path: str) -> list[str]:
        if not is_dir(path):
            raise not_found(path)
        prefix = dir_prefix(path)
        children = []
        for descendant in below(prefix):
            end = descendant.find("/", len(prefix))
            child = descendant if end == -1 else descendant[:end]
            if not children or children[-1] != child:
                children.append(child)
        return children

    def move_path(self, source: str, destination: str) -> None:
        if source == destination:
            if source in FILES or is_dir(source):
                return
            raise not_found(source)
        if source in FILES:
            check_creatable(destination)
            insert(destination, remove(source))
            return
        prefix = dir_prefix(source)
        moved = list(below(prefix))
        if not moved:
            raise not_found(source)
        if destination.startswith(prefix):
            raise backend(f"cannot move {source} into itself")
        check_creatable(destination)
        if destination in FILES:
            raise backend(f"{destination} is a file")
        for path in moved:
            insert(f"{destination}/{path[len(prefix):]}", remove(path))

    def delete(self, path: str) -> None:
        if remove(path) is not None:
            return
        doomed = list(below(dir_prefix(path)))
        if not doomed:
            raise not_found(path)
        for victim in doomed:
            remove(victim)

    def redirect_url(self, method: str, path: str):
        # None: clients are served through the registry. A driver in front
        # of a service that can hand out signed URLs may return one here.
        return None

    def walk(self, path: str, start_after, limit: int) -> list[FileInfo]:
        # Raising Err(Error_Unsupported("walk")) is allowed too: the host then
        # walks with `list` and `stat`.
        if not is_dir(path):
            raise not_found(path)
        prefix = dir_prefix(path)
        start = start_after if start_after is not None and start_after >= prefix else prefix
        i = bisect.bisect_right(PATHS, start) if start is start_after else bisect.bisect_left(PATHS, start)
        page = []
        while i < len(PATHS) and len(page) < limit and PATHS[i].startswith(prefix):
            page.append(info(PATHS[i], FILES[PATHS[i]]))
            i += 1
        return page


class FileReader(driver.FileReader):
    def __init__(self, path: str, offset: int) -> None:
        self.path = path
        self.offset = offset

    def read(self, max_bytes: int) -> bytes:
        data = file(self.path).data
        start = min(self.offset, len(data))
        piece = bytes(data[start : start + max_bytes])
        self.offset = start + len(piece)
        return piece


class FileWriter(driver.FileWriter):
    def __init__(self, path: str) -> None:
        self.path = path
        self.closed = False

    def finish(self) -> None:
        if self.closed:
            raise backend(f"{self.path}: the writer was already closed, committed or cancelled")
        self.closed = True

    def write(self, data: bytes) -> int:
        if self.closed:
            raise backend(f"{self.path}: write after close, commit or cancel")
        entry = FILES.get(self.path)
        if entry is None:
            raise not_found(self.path)
        entry.data += data
        entry.modified_ns = time.time_ns()
        return len(data)

    def size(self) -> int:
        entry = FILES.get(self.path)
        return 0 if entry is None else len(entry.data)

    def close(self) -> None:
        self.finish()

    def cancel(self) -> None:
        self.finish()
        remove(self.path)

    def commit(self) -> None:
        self.finish()
