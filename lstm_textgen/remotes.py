"""check-remote: every object on a DVC remote checked against its content address, and the bad
ones removed on request, so that `dvc push` sends them again. A command for people
(`lstm-textgen check-remote`).

    lstm-textgen check-remote                  # the default remote: list what is wrong, exit 1 if anything is
    lstm-textgen check-remote --remote store   # another remote of this project
    lstm-textgen check-remote --remove-bad     # remove the bad objects; then `dvc push` sends them again

A DVC remote stores each file under the md5 of its bytes, and each directory as a `.dir` object
listing its files. DVC trusts what is there: an object cut short (a push killed on a store that
does not write objects whole) is never sent again, and a `.dir` that does not parse stops every
later push with "object … is corrupted". This reads every object through DVC's own remote file
system and hashing (dvc_data), so it speaks to any remote DVC does: a directory, S3, and so on.
"""

from __future__ import annotations

import argparse
import json
import sys

from lstm_textgen.errors import UserError


def dir_problem(content: bytes) -> str | None:
    """Why a `.dir` object's bytes are not a directory listing (a JSON list of entries, each
    with a relpath and an md5), or None."""
    try:
        entries = json.loads(content)
    except ValueError:
        return f"does not parse as a directory listing ({len(content):,} bytes)"
    if not (isinstance(entries, list) and all(isinstance(e, dict) and "relpath" in e and "md5" in e
                                               for e in entries)):
        return "is JSON, but not a list of files with their md5"
    return None


def object_problem(odb, oid: str) -> str | None:
    """What is wrong with the object `oid` of the object database `odb`, or None."""
    from dvc_data.hashfile.hash import hash_file

    path = odb.oid_to_path(oid)
    if oid.endswith(".dir"):
        with odb.fs.open(path, "rb") as f:
            return dir_problem(f.read())
    _, actual = hash_file(path, odb.fs, odb.hash_name)
    if actual.value != oid:
        return f"its bytes hash to {actual.value} ({odb.fs.size(path):,} bytes), not to its name"
    return None


def directories_holding(odb, oid: str) -> list[str]:
    """The `.dir` objects on `odb` that list the file object `oid`: `dvc push` takes a directory
    whose listing the remote holds as sent whole, so removing a file of it alone would never have
    the file sent again; removing the listing too has the whole directory checked and sent."""
    found = []
    for listing in (o for o in odb.all() if o.endswith(".dir") and not oid.endswith(".dir")):
        with odb.fs.open(odb.oid_to_path(listing), "rb") as f:
            try:
                entries = json.loads(f.read())
            except ValueError:
                continue  # a bad listing is itself among the bad objects
        if any(isinstance(e, dict) and e.get("md5") == oid for e in entries):
            found.append(listing)
    return found


def check_remote(name: str | None = None, remove: bool = False, root: str = ".") -> tuple[int, list[tuple[str, str]]]:
    """Check every object on the remote `name` (default: the project's default remote); with
    `remove`, delete the bad ones. Returns how many objects were checked, and (path, problem)
    for each bad one."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    try:
        repo = Repo(root)
    except DvcException as err:
        raise UserError(f"{root} is not a DVC project ({err})")
    with repo:
        try:
            remote = repo.cloud.get_remote(name, "check-remote")
        except DvcException as err:
            raise UserError(str(err))
        checked, bad = 0, []
        for odb in (remote.odb, remote.legacy_odb):  # DVC 3's files/md5/, and the layout before it
            for oid in list(odb.all()):
                checked += 1
                if problem := object_problem(odb, oid):
                    bad.append((odb, oid, problem))
        if remove:
            from dvc_data.hashfile.db import get_index
            for odb, oid, _ in bad:
                odb.fs.remove(odb.oid_to_path(oid))
                for listing in directories_holding(odb, oid):
                    odb.fs.remove(odb.oid_to_path(listing))
            for odb in {odb for odb, _, _ in bad}:
                get_index(odb).clear()  # DVC's record of what the remote holds, as `dvc gc --cloud` clears it
        return checked, [(odb.oid_to_path(oid), problem) for odb, oid, problem in bad]


def main(argv=None, prog=None) -> None:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0].replace("\n", " "),
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="examples:\n" + __doc__.split("\n\n")[1])
    parser.add_argument("--remote", "-r", help="the remote's name (default: the project's default remote)")
    parser.add_argument("--remove-bad", action="store_true", help="remove the bad objects, so `dvc push` sends "
                                                                   "them again")
    args = parser.parse_args(argv)
    checked, bad = check_remote(args.remote, args.remove_bad)
    for path, problem in bad:
        print(f"bad: {path}: {problem}")
    if not bad:
        print(f"checked {checked:,} objects: each is what its name says")
    elif args.remove_bad:
        print(f"removed {len(bad)} bad of {checked:,} objects; run `dvc push` to send them again")
    else:
        print(f"{len(bad)} bad of {checked:,} objects: `lstm-textgen check-remote --remove-bad` removes them, "
              "then `dvc push` sends them again", file=sys.stderr)
        sys.exit(1)
