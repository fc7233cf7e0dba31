// {{name}}: a Berth storage driver in JavaScript that keeps every file in
// this instance's memory. It passes the whole conformance suite (./test.sh),
// so it is a working starting point: replace the store below with calls to
// your own, keeping the semantics each function's comment in wit/storage.wit
// asks for, and run ./test.sh after each change.
//
// How the WIT types look from JavaScript (componentize-js):
//   u64 (offsets, sizes, times)  BigInt          list<u8>  Uint8Array
//   option<T>                    T or undefined   record    object, camelCase
//   enum                         its case name as a string, e.g. "resident"
//   result<T, error>             return T, or throw an Error whose `payload`
//                                is the error, e.g. {tag: "path-not-found", val: path}
//                                (see fail() below). Any other exception traps.
//
// Paths reaching the driver are already checked by the host: absolute,
// `/`-separated, no `.` or `..`. A directory exists exactly when some file is
// below it, and `/` always exists.

// The host's log, tagged with the plugin's name: log("info", "a line").
import { log } from "berth:storage/host@0.1.0";

// Path -> File, and the same paths in sorted order for `list` and `walk`.
// They live as long as the instance, which is as long as the process because
// `describe` asks for a resident instance.
const files = new Map();
const paths = [];

// A file's content is the list of the pieces written to it, kept as they
// came: appending never copies what is already there, which keeps a long
// upload's memory to its size.
class File {
  constructor(content) {
    this.chunks = content && content.length > 0 ? [content] : [];
    this.size = content ? content.length : 0;
    this.modifiedNs = nowNs();
  }

  // The whole content, as one array.
  content() {
    if (this.chunks.length !== 1) {
      const whole = new Uint8Array(this.size);
      let at = 0;
      for (const chunk of this.chunks) {
        whole.set(chunk, at);
        at += chunk.length;
      }
      this.chunks = this.size > 0 ? [whole] : [];
    }
    return this.chunks[0] ?? new Uint8Array(0);
  }

  // Up to `max` bytes from `offset`: at most the rest of one chunk (a read
  // may return fewer bytes than asked, as long as it returns some).
  slice(offset, max) {
    let start = 0;
    for (const chunk of this.chunks) {
      if (offset < start + chunk.length) {
        return chunk.subarray(offset - start, Math.min(chunk.length, offset - start + max));
      }
      start += chunk.length;
    }
    return new Uint8Array(0);
  }

  append(data) {
    // `data` is the component's own copy of the bytes: it can be kept.
    if (data.length > 0) this.chunks.push(data);
    this.size += data.length;
    this.modifiedNs = nowNs();
  }

  truncate() {
    this.chunks = [];
    this.size = 0;
    this.modifiedNs = nowNs();
  }
}

function nowNs() {
  return BigInt(Date.now()) * 1000000n;
}

// An error for a WIT `result`: the host receives `payload`.
function fail(tag, val) {
  const error = new Error(`${tag}: ${val}`);
  error.payload = { tag, val };
  return error;
}
const notFound = (path) => fail("path-not-found", path);
const backend = (message) => fail("backend", message);

// The index in `paths` of the first path not less than `path`.
function lowerBound(path) {
  let lo = 0;
  let hi = paths.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (paths[mid] < path) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function insert(path, file) {
  if (!files.has(path)) paths.splice(lowerBound(path), 0, path);
  files.set(path, file);
}

function remove(path) {
  const file = files.get(path);
  if (file !== undefined) {
    files.delete(path);
    paths.splice(lowerBound(path), 1);
  }
  return file;
}

// The prefix every path below the directory `path` starts with.
function dirPrefix(path) {
  return path.replace(/\/+$/, "") + "/";
}

// The paths of the files below `prefix` (see dirPrefix), in order.
function below(prefix) {
  const found = [];
  for (let i = lowerBound(prefix); i < paths.length && paths[i].startsWith(prefix); i++) {
    found.push(paths[i]);
  }
  return found;
}

function isDir(path) {
  const prefix = dirPrefix(path);
  const i = lowerBound(prefix);
  return path === "/" || (i < paths.length && paths[i].startsWith(prefix));
}

function file(path) {
  const found = files.get(path);
  if (found === undefined) throw isDir(path) ? backend(`${path} is a directory`) : notFound(path);
  return found;
}

// Keeps the store a tree: no file where a directory is, nor below a file.
function checkCreatable(path) {
  if (isDir(path)) throw backend(`${path} is a directory`);
  for (let end = path.indexOf("/", 1); end !== -1; end = path.indexOf("/", end + 1)) {
    if (files.has(path.slice(0, end))) throw backend(`${path.slice(0, end)} is a file`);
  }
}

function info(path, entry) {
  return { path, size: BigInt(entry.size), modifiedNs: entry.modifiedNs, isDir: false };
}

// Reads the current content of `path`, from `offset` on.
class FileReader {
  constructor(path, offset) {
    this.path = path;
    this.offset = offset; // a BigInt
  }

  read(maxBytes) {
    const entry = file(this.path);
    if (this.offset >= BigInt(entry.size)) return new Uint8Array(0);
    const piece = entry.slice(Number(this.offset), maxBytes);
    this.offset += BigInt(piece.length);
    return piece;
  }
}

// Writes straight into the file at `path`, so what it wrote survives the
// writer, as an interrupted upload's content must for a later append.
class FileWriter {
  constructor(path) {
    this.path = path;
    this.closed = false; // closed, committed or cancelled: no more writes
  }

  finish() {
    if (this.closed) throw backend(`${this.path}: the writer was already closed, committed or cancelled`);
    this.closed = true;
  }

  write(data) {
    if (this.closed) throw backend(`${this.path}: write after close, commit or cancel`);
    // Moved or deleted by someone else since the writer opened it.
    const entry = files.get(this.path);
    if (entry === undefined) throw notFound(this.path);
    entry.append(data);
    return BigInt(data.length);
  }

  size() {
    return BigInt(files.get(this.path)?.size ?? 0);
  }

  close() {
    // The content is already in place for a later append.
    this.finish();
  }

  cancel() {
    this.finish();
    remove(this.path);
  }

  commit() {
    this.finish();
  }
}

// The export of the WIT interface `berth:storage/driver`.
export const driver = {
  FileReader,
  FileWriter,

  describe() {
    return {
      // "resident": one instance for the whole process, so the memory above
      // survives between calls. A driver whose data lives elsewhere answers
      // "per-call".
      instanceModel: "resident",
      // Name a parameter here to be given that host directory.
      directoryParameter: undefined,
      // Or describe how this driver reaches its service over HTTP (and
      // remove `http` from the disabled features in build.sh).
      network: undefined,
    };
  },

  // `parameters` are the entries under `storage:` -> `{{name}}:` in the
  // registry configuration, as [key, value] string pairs. Check yours here.
  init(parameters) {
    if (parameters.length > 0) {
      throw backend(`unknown parameter ${JSON.stringify(parameters[0][0])}: the {{name}} driver takes no parameters`);
    }
    log("debug", "{{name}} initialised");
  },

  getContent(path) {
    return file(path).content();
  },

  putContent(path, content) {
    checkCreatable(path);
    // `content` is the component's own copy of the bytes: it can be kept.
    insert(path, new File(content));
  },

  reader(path, offset) {
    file(path);
    return new FileReader(path, offset);
  },

  writer(path, append) {
    checkCreatable(path);
    let entry = files.get(path);
    if (entry === undefined) {
      entry = new File();
      insert(path, entry);
    }
    if (append) entry.modifiedNs = nowNs();
    else entry.truncate();
    return new FileWriter(path);
  },

  stat(path) {
    const entry = files.get(path);
    if (entry !== undefined) return info(path, entry);
    // A directory was modified when the newest file below it was.
    const inside = below(dirPrefix(path));
    if (inside.length === 0 && path !== "/") throw notFound(path);
    let newest = 0n;
    for (const p of inside) {
      if (files.get(p).modifiedNs > newest) newest = files.get(p).modifiedNs;
    }
    return { path, size: 0n, modifiedNs: newest, isDir: true };
  },

  list(path) {
    if (!isDir(path)) throw notFound(path);
    const prefix = dirPrefix(path);
    const children = [];
    for (const descendant of below(prefix)) {
      const end = descendant.indexOf("/", prefix.length);
      const child = end === -1 ? descendant : descendant.slice(0, end);
      if (children[children.length - 1] !== child) children.push(child);
    }
    return children;
  },

  movePath(source, destination) {
    if (source === destination) {
      // Like rename(2): nothing to do once the source is known to exist.
      if (files.has(source) || isDir(source)) return;
      throw notFound(source);
    }
    if (files.has(source)) {
      checkCreatable(destination);
      insert(destination, remove(source));
      return;
    }
    // A directory: move every file below it.
    const prefix = dirPrefix(source);
    const moved = below(prefix);
    if (moved.length === 0) throw notFound(source);
    if (destination.startsWith(prefix)) throw backend(`cannot move ${source} into itself`);
    checkCreatable(destination);
    if (files.has(destination)) throw backend(`${destination} is a file`);
    for (const p of moved) insert(`${destination}/${p.slice(prefix.length)}`, remove(p));
  },

  delete(path) {
    if (remove(path) !== undefined) return;
    const doomed = below(dirPrefix(path));
    if (doomed.length === 0) throw notFound(path);
    for (const p of doomed) remove(p);
  },

  // None: clients are served through the registry. A driver in front of a
  // service that can hand out signed URLs may return one here.
  redirectUrl(method, path) {
    return undefined;
  },

  // Throwing fail("unsupported", "walk") is allowed too: the host then walks
  // with `list` and `stat`.
  walk(path, startAfter, limit) {
    if (!isDir(path)) throw notFound(path);
    const prefix = dirPrefix(path);
    let i = lowerBound(prefix);
    if (startAfter != null && startAfter >= prefix) {
      i = lowerBound(startAfter);
      if (paths[i] === startAfter) i++;
    }
    const page = [];
    for (; i < paths.length && page.length < limit && paths[i].startsWith(prefix); i++) {
      page.push(info(paths[i], files.get(paths[i])));
    }
    return page;
  },
};
