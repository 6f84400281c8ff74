/* orderbook.h -- a price-time-priority limit order book for one market.
 *
 * This is the matching core of KK99 Exchange. It implements:
 *   - limit orders (GTC / IOC / FOK, optional post-only), market orders by base
 *     quantity, market BUY orders by quote budget;
 *   - cancel (O(1) by order id), reduce in place (keeps time priority) and
 *     replace (cancel + new order with the same id: loses time priority);
 *   - self-trade prevention (STP) decided by the taker's mode, Binance semantics;
 *   - event records written into a caller-provided buffer (no callbacks), with a
 *     pause/resume protocol so that a bounded buffer never loses events;
 *   - a batch entry point, best bid/ask, aggregated depth, order lookup;
 *   - an optional volatility band: a new order that would print outside the band in
 *     force is refused whole (nothing of it prints), and every print moves the band;
 *   - snapshot and restore of the whole book with time priority preserved.
 *
 * Units: prices are int64 ticks (> 0), quantities int64 lots (> 0). The quote
 * amount of a fill is price_ticks * qty_lots. There is no floating point.
 *
 * Ownership: ob_book_new / ob_book_restore return a book owned by the caller,
 * released with ob_book_free. Event and command arrays are always owned by the
 * caller; the book never keeps a pointer to them after a call returns.
 *
 * Threading: a book is not thread-safe; one thread drives one book.
 *
 * Design notes and the event format in detail: docs/orderbook.md.
 */
#ifndef KK99_ORDERBOOK_H
#define KK99_ORDERBOOK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- result codes ------------------------------------------------------ */

typedef enum ob_result {
    OB_OK = 0,                   /* success; all events of the call were written          */
    OB_MORE = 1,                 /* success so far, but the event buffer is full: drain it,
                                    then call ob_resume (if ob_pending) / continue the batch */
    OB_ERR_INVALID_QUANTITY = 2, /* qty / budget <= 0, or reduce not strictly below remaining */
    OB_ERR_INVALID_PRICE = 3,    /* limit price <= 0                                      */
    OB_ERR_DUPLICATE_ID = 4,     /* an order with this id already rests in the book       */
    OB_ERR_UNKNOWN_ID = 5,       /* no resting order has this id                          */
    OB_ERR_OVERFLOW = 6,         /* price * qty, or a level's total qty, would overflow int64 */
    OB_ERR_BUFFER_TOO_SMALL = 7, /* event buffer has fewer than OB_MIN_EVENTS slots       */
    OB_ERR_INVALID_ARGUMENT = 8, /* bad enum value (side, tif, stp, command type), NULL
                                    pointer, post-only with a non-GTC time in force        */
    OB_ERR_NO_MEMORY = 9,        /* an allocation failed; the book is unchanged           */
    OB_ERR_BUSY = 10,            /* a command is paused (OB_MORE); call ob_resume first   */
    OB_ERR_BAD_SNAPSHOT = 11     /* snapshot bytes are truncated, corrupt or inconsistent */
} ob_result;

/* Static English description of a result code; never NULL. */
const char *ob_strerror(ob_result r);

/* ---- enumerations ------------------------------------------------------ */

enum { OB_BUY = 0, OB_SELL = 1 };

enum { OB_GTC = 0, OB_IOC = 1, OB_FOK = 2 };

/* Self-trade prevention: what happens when the taker would trade with a resting
 * order of the same owner. The taker's mode decides. */
enum {
    OB_STP_NONE = 0,         /* self-trades are allowed                                */
    OB_STP_EXPIRE_TAKER = 1, /* the taker's remainder expires; matching stops          */
    OB_STP_EXPIRE_MAKER = 2, /* the resting order expires; matching continues          */
    OB_STP_EXPIRE_BOTH = 3,  /* both expire; matching stops                            */
    OB_STP_DECREMENT = 4     /* both are reduced by the would-be fill qty; the one(s)
                                reaching zero expire; no trade                        */
};

enum {
    OB_CMD_LIMIT = 0,        /* order_id, owner, side, price, qty, tif, post_only, stp */
    OB_CMD_MARKET = 1,       /* order_id, owner, side, qty, stp                        */
    OB_CMD_MARKET_QUOTE = 2, /* order_id, owner, qty = quote budget, stp; always BUY   */
    OB_CMD_CANCEL = 3,       /* order_id                                               */
    OB_CMD_REDUCE = 4,       /* order_id, qty = new remaining qty (0 < qty < remaining)*/
    OB_CMD_REPLACE = 5       /* order_id, price, qty (new), post_only, stp: cancel +
                                new GTC limit with the same id, owner and side         */
};

enum {
    OB_EV_ACCEPTED = 0,  /* a new order passed validation and will be matched      */
    OB_EV_TRADE = 1,     /* a fill between the taker (order_id) and a maker        */
    OB_EV_CANCELLED = 2, /* a resting order left the book on request               */
    OB_EV_EXPIRED = 3,   /* an order (or its remainder) ended without filling      */
    OB_EV_REJECTED = 4,  /* a command was refused; the book is unchanged           */
    OB_EV_REDUCED = 5    /* an order's remaining qty went down, keeping priority    */
};

enum {
    OB_REASON_NONE = 0,
    OB_REASON_USER_CANCEL = 1,
    OB_REASON_USER_REDUCE = 2,
    OB_REASON_REPLACED = 3,
    OB_REASON_IOC_REMAINDER = 4,
    OB_REASON_FOK_UNFILLABLE = 5,
    OB_REASON_POST_ONLY_WOULD_TAKE = 6,
    OB_REASON_NO_LIQUIDITY = 7,
    OB_REASON_BUDGET_EXHAUSTED = 8,
    OB_REASON_STP_EXPIRE_TAKER = 9,
    OB_REASON_STP_EXPIRE_MAKER = 10,
    OB_REASON_STP_EXPIRE_BOTH = 11,
    OB_REASON_STP_DECREMENT = 12,
    OB_REASON_OUTSIDE_BAND = 13, /* REJECTED: a print would fall outside the volatility band;
                                    price = the first such print                         */
    /* Reasons of REJECTED events produced by the batch API: reason = 100 + ob_result. */
    OB_REASON_REJECT_BASE = 100
};

/* What a band refusal does to the rest of an ob_execute_batch call. */
enum {
    OB_BAND_HALT = 0, /* the batch stops after the refused command (the market halts)     */
    OB_BAND_SKIP = 1  /* the refused command is skipped; the batch goes on               */
};

#define OB_FLAG_POST_ONLY 1u

/* The smallest event buffer any call accepts. One command never needs more than
 * this many slots to make progress; larger buffers just need fewer resumes. */
#define OB_MIN_EVENTS 4

/* ---- records ----------------------------------------------------------- */

/* One command of the batch API (and of ob_execute). 40 bytes, no hidden padding. */
typedef struct ob_command {
    uint8_t type;      /* OB_CMD_*                        */
    uint8_t side;      /* OB_BUY / OB_SELL                */
    uint8_t tif;       /* OB_GTC / OB_IOC / OB_FOK        */
    uint8_t flags;     /* OB_FLAG_POST_ONLY               */
    uint8_t stp;       /* OB_STP_*                        */
    uint8_t pad[3];    /* must be zero (ignored)          */
    int64_t order_id;
    int64_t owner;
    int64_t price;     /* ticks; limit and replace only   */
    int64_t qty;       /* lots; quote units for MARKET_QUOTE */
} ob_command;

/* One event. 72 bytes, no hidden padding. What each kind carries is documented
 * in docs/orderbook.md; in short:
 *   order_id        the subject: the taker for TRADE, else the order concerned
 *   side            side of order_id
 *   price           TRADE: the maker's price; others: the subject's limit price (0 for market)
 *   qty             TRADE: fill qty; CANCELLED/EXPIRED/REDUCED: qty removed; ACCEPTED: order qty
 *   maker_id/owner  TRADE only (0 otherwise)
 *   taker_owner     owner of order_id (for every kind)
 *   maker_remaining TRADE: maker's qty left after the fill
 *   taker_remaining remaining qty of order_id after the event (quote units for MARKET_QUOTE)
 */
typedef struct ob_event {
    int64_t order_id;
    int64_t price;
    int64_t qty;
    int64_t maker_id;
    int64_t maker_owner;
    int64_t taker_owner;
    int64_t maker_remaining;
    int64_t taker_remaining;
    uint8_t kind;      /* OB_EV_*     */
    uint8_t reason;    /* OB_REASON_* */
    uint8_t side;      /* OB_BUY / OB_SELL */
    uint8_t pad[5];
} ob_event;

typedef struct ob_level_info {
    int64_t price;
    int64_t qty;       /* total remaining qty at this price */
    int64_t count;     /* number of resting orders          */
} ob_level_info;

typedef struct ob_order_info {
    int64_t order_id;
    int64_t owner;
    int64_t price;
    int64_t remaining;
    uint8_t side;
    uint8_t pad[7];
} ob_order_info;

/* The volatility band's state (docs/halts.md), prices in ticks. The band in force is
 * the intersection, bounds inclusive, of
 *   static:  reference x (1 -/+ static_num/static_den %), the reference being
 *            ref_sum / ref_count (the mean trade price of the reference window), or
 *            `last` when that window is empty (ref_count == 0);
 *   dynamic: [low x (1 - dynamic_num/dynamic_den %), high x (1 + ... %)], high/low of
 *            the dynamic window, or `last` for both when it is empty (dyn_count == 0);
 * computed exactly (128-bit integers) and rounded inwards to whole ticks. last <= 0
 * (no trade yet) means no band. Every print the book makes adds its price to both
 * windows (the caller owns the clock: windows only shrink between calls). 72 bytes. */
typedef struct ob_band {
    int64_t last;        /* last trade price; <= 0: no trade yet, no band               */
    int64_t ref_sum;     /* sum of the prices in the reference window (< 2^63)           */
    int64_t ref_count;
    int64_t high;        /* highest and lowest price of the dynamic window              */
    int64_t low;
    int64_t dyn_count;
    int32_t static_num, static_den;   /* static half-width = num / den percent (den > 0)  */
    int32_t dynamic_num, dynamic_den; /* dynamic widening = num / den percent (den > 0)   */
    uint8_t mode;        /* OB_BAND_HALT / OB_BAND_SKIP                                  */
    uint8_t pad[7];
} ob_band;

/* ---- the book ---------------------------------------------------------- */

typedef struct ob_book ob_book;

/* Create an empty book. expected_orders pre-sizes the order pool and id index
 * (0 = a small default); the pool still grows on demand. NULL if out of memory. */
ob_book *ob_book_new(size_t expected_orders);
void ob_book_free(ob_book *book); /* NULL is fine */

/* Apply one command. Writes at most cap events into ev and their number into
 * *n_events. Returns OB_OK, OB_MORE (paused: drain ev, then ob_resume), or an
 * error code -- in which case nothing was written and the book is unchanged.
 * Post-only crossing is not an error: it yields one REJECTED event. */
ob_result ob_execute(ob_book *book, const ob_command *cmd,
                     ob_event *ev, size_t cap, size_t *n_events);

/* Continue a paused command (after OB_MORE). Returns OB_OK or OB_MORE again. */
ob_result ob_resume(ob_book *book, ob_event *ev, size_t cap, size_t *n_events);

/* Non-zero while a command is paused; every other mutating call then fails
 * with OB_ERR_BUSY. */
int ob_pending(const ob_book *book);

/* Apply n commands in order. A refused command does not abort the batch: it
 * yields one REJECTED event with reason OB_REASON_REJECT_BASE + its ob_result.
 * *n_consumed is the number of commands started. Returns OB_OK when all n were
 * applied, or when an armed band in mode OB_BAND_HALT refused a command (it is the
 * last one counted in *n_consumed and its REJECTED the last event); OB_MORE when the buffer filled: drain ev, call ob_resume while
 * ob_pending(book), then call again with cmds + *n_consumed. Errors other than
 * OB_ERR_BUFFER_TOO_SMALL / OB_ERR_INVALID_ARGUMENT / OB_ERR_BUSY are reported
 * per command, never for the whole batch. */
ob_result ob_execute_batch(ob_book *book, const ob_command *cmds, size_t n,
                           ob_event *ev, size_t cap,
                           size_t *n_events, size_t *n_consumed);

/* ---- volatility band --------------------------------------------------- */

/* Arm the band with a copy of *band, or disarm it (band == NULL). While armed, a new
 * order (LIMIT, MARKET, MARKET_QUOTE, REPLACE) whose match would print at any price
 * outside [lo, hi] -- the band in force when the command starts -- is refused: one
 * REJECTED event with reason OB_REASON_OUTSIDE_BAND and price = the first such print;
 * the book (and a replaced order) is unchanged. The decision simulates the match
 * exactly: limit price, quantity or quote budget, STP, FOK. In ob_execute_batch, mode
 * OB_BAND_HALT stops the batch after the refused command (OB_OK with *n_consumed < n).
 * OB_ERR_INVALID_ARGUMENT for negative counts or sums, den <= 0, num < 0, counts > 0
 * with last <= 0, low > high, a bad mode; OB_ERR_BUSY while a command is paused.
 * Not part of a snapshot. */
ob_result ob_band_set(ob_book *book, const ob_band *band);

/* Copy the band state (moved by every print since ob_band_set) into *out; returns 0
 * when no band is armed. */
int ob_band_get(const ob_book *book, ob_band *out);

/* The band in force for state *band: 1 and [*lo, *hi] (inclusive, ticks, clamped to
 * int64), or 0 when there is no band (last <= 0). Pure; no book needed. */
int ob_band_limits(const ob_band *band, int64_t *lo, int64_t *hi);

/* ---- queries ----------------------------------------------------------- */

/* Best price and total qty on a side; returns 0 if that side is empty. O(1). */
int ob_best(const ob_book *book, int side, int64_t *price, int64_t *qty);

/* Top levels of a side, best first. Returns how many were written (<= max). */
size_t ob_depth(const ob_book *book, int side, ob_level_info *out, size_t max);

/* Look up a resting order. OB_OK or OB_ERR_UNKNOWN_ID. */
ob_result ob_get_order(const ob_book *book, int64_t order_id, ob_order_info *out);

size_t ob_order_count(const ob_book *book);             /* resting orders       */
size_t ob_level_count(const ob_book *book, int side);   /* price levels of side */
/* Number of commands applied (accepted adds, cancels, reduces, replaces). */
uint64_t ob_sequence(const ob_book *book);

/* ---- snapshot ---------------------------------------------------------- */

/* Bytes ob_snapshot_write needs for the current book. */
size_t ob_snapshot_size(const ob_book *book);
/* Serialise the book (format in docs/orderbook.md). OB_ERR_BUFFER_TOO_SMALL if
 * cap < ob_snapshot_size; OB_ERR_BUSY while paused. */
ob_result ob_snapshot_write(const ob_book *book, uint8_t *buf, size_t cap, size_t *written);
/* Build a new book from a snapshot. On success *out owns a new book. */
ob_result ob_book_restore(const uint8_t *buf, size_t len, ob_book **out);

#ifdef __cplusplus
}
#endif

#endif /* KK99_ORDERBOOK_H */
