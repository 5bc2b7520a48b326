"""Reading a .tar / .tar.gz completely or refusing it (standard library only).

    for member, content in tar_entries('images.tar.gz'):   # every member, its bytes if a file
      ...

Python's tarfile takes a damaged header, or a file cut at a member boundary,
for the end of the archive; here only the end-of-archive block is, and a
compressed stream is read to its end, where its checksum and length are
checked: an archive damaged or cut anywhere is a DataError, never fewer files.
"""

from __future__ import annotations

import lzma
import tarfile
import zlib
from collections.abc import Iterator

from vit_jax.data import DataError


def tar_entries(path: str, read: bool = True) -> Iterator[tuple[tarfile.TarInfo, bytes | None]]:
  """(member, its bytes if `read` and it is a file) of every member of a .tar
  / .tar.gz; DataError where the archive is damaged or cut short anywhere."""
  try:
    with tarfile.open(path, tarinfo=_TarInfo) as tar:
      for member in tar:
        yield member, tar.extractfile(member).read() if read and member.isfile() else None
      if not isinstance(getattr(tar, 'end_of_members', None), tarfile.EOFHeaderError):
        raise DataError(f'the archive {path!r} is damaged or cut short: its list of files breaks off after '
                        f'{len(tar.members)} entries, before the end-of-archive marker; get a complete copy.')
      while tar.fileobj.read(1 << 20):  # The rest of a compressed stream: its checksum and length are checked at its end.
        pass
  except DataError:
    raise
  except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as e:
    opened = 'could not be opened' not in str(e)
    reason = ' '.join(str(e).split())[:150] or type(e).__name__ if opened else 'not a tar archive'
    raise DataError(f'cannot read the archive {path!r} ({reason}): it is damaged, cut short or not a tar archive; '
                    'it must be a complete directory or .tar/.tar.gz of split/class/image files.') from None


class _TarInfo(tarfile.TarInfo):
  """A tar header reader that records why the list of members ended: Python's
  tarfile takes a damaged header, or a file cut at a member boundary, for the
  end of the archive, where only the end-of-archive block (zeros) is."""

  @classmethod
  def fromtarfile(cls, tar: tarfile.TarFile):
    try:
      return super().fromtarfile(tar)
    except tarfile.HeaderError as e:
      tar.end_of_members = e
      raise
