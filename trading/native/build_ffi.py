"""cffi build script for the native order book (out-of-line API mode).

``setup.py`` names it in ``cffi_modules``, so ``pip install -e .`` compiles
``orderbook.c`` into the extension module ``trading.native._orderbook``. The cdef
below repeats the public declarations of ``orderbook.h``; constants are declared
with ``...`` so the C compiler supplies (and thereby checks) their values.
"""
from __future__ import annotations

import os

from cffi import FFI

_HERE = os.path.dirname(os.path.abspath(__file__))
# setuptools wants source paths relative to the project root (the current directory).
_REL = os.path.relpath(_HERE)

CDEF = """
typedef enum ob_result {
    OB_OK, OB_MORE, OB_ERR_INVALID_QUANTITY, OB_ERR_INVALID_PRICE, OB_ERR_DUPLICATE_ID,
    OB_ERR_UNKNOWN_ID, OB_ERR_OVERFLOW, OB_ERR_BUFFER_TOO_SMALL, OB_ERR_INVALID_ARGUMENT,
    OB_ERR_NO_MEMORY, OB_ERR_BUSY, OB_ERR_BAD_SNAPSHOT, ...
} ob_result;

#define OB_MIN_EVENTS ...
#define OB_FLAG_POST_ONLY ...

typedef struct ob_command {
    uint8_t type; uint8_t side; uint8_t tif; uint8_t flags; uint8_t stp; uint8_t pad[3];
    int64_t order_id; int64_t owner; int64_t price; int64_t qty;
} ob_command;

typedef struct ob_event {
    int64_t order_id; int64_t price; int64_t qty; int64_t maker_id; int64_t maker_owner;
    int64_t taker_owner; int64_t maker_remaining; int64_t taker_remaining;
    uint8_t kind; uint8_t reason; uint8_t side; uint8_t pad[5];
} ob_event;

typedef struct ob_level_info { int64_t price; int64_t qty; int64_t count; } ob_level_info;

typedef struct ob_order_info {
    int64_t order_id; int64_t owner; int64_t price; int64_t remaining; uint8_t side; uint8_t pad[7];
} ob_order_info;

typedef struct ob_book ob_book;

const char *ob_strerror(ob_result r);
ob_book *ob_book_new(size_t expected_orders);
void ob_book_free(ob_book *book);
ob_result ob_execute(ob_book *book, const ob_command *cmd, ob_event *ev, size_t cap, size_t *n_events);
ob_result ob_resume(ob_book *book, ob_event *ev, size_t cap, size_t *n_events);
int ob_pending(const ob_book *book);
ob_result ob_execute_batch(ob_book *book, const ob_command *cmds, size_t n, ob_event *ev, size_t cap,
                           size_t *n_events, size_t *n_consumed);
int ob_best(const ob_book *book, int side, int64_t *price, int64_t *qty);
size_t ob_depth(const ob_book *book, int side, ob_level_info *out, size_t max);
ob_result ob_get_order(const ob_book *book, int64_t order_id, ob_order_info *out);
size_t ob_order_count(const ob_book *book);
size_t ob_level_count(const ob_book *book, int side);
uint64_t ob_sequence(const ob_book *book);
size_t ob_snapshot_size(const ob_book *book);
ob_result ob_snapshot_write(const ob_book *book, uint8_t *buf, size_t cap, size_t *written);
ob_result ob_book_restore(const uint8_t *buf, size_t len, ob_book **out);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
ffibuilder.set_source(
    "trading.native._orderbook",
    '#include "orderbook.h"',
    sources=[os.path.join(_REL, "orderbook.c")],
    include_dirs=[_REL],
    extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra"],
    depends=[os.path.join(_REL, "orderbook.h")],
)

if __name__ == "__main__":  # pragma: no cover - manual build
    ffibuilder.compile(verbose=True)
