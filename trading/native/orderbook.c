/* orderbook.c -- implementation of the limit order book declared in orderbook.h.
 *
 * Data structures (details and memory figures in docs/orderbook.md):
 *   - nodes:  one pool (array) of resting orders, addressed by uint32 index, with a
 *             freelist threaded through `next`. The pool grows by doubling only when
 *             the freelist is empty, so steady-state matching never calls malloc.
 *   - levels: a second pool of price levels; each is a FIFO doubly-linked list of
 *             nodes with its total qty and order count.
 *   - sides:  per side, a sorted array of level keys (key = price for bids,
 *             -price for asks) in ascending key order, so the BEST level is always
 *             the LAST element: best price is O(1), removing the best level is a pop,
 *             and inserting/removing a level costs a memmove proportional to its
 *             distance from the top of the book (tiny for real books).
 *   - ids:    open-addressing hash map (linear probing, backward-shift deletion)
 *             from order id to node index: O(1) cancel / reduce / lookup.
 *
 * Invariants (checked by the tests through the public API):
 *   - level.total == sum of its nodes' qty; every resting node has qty > 0;
 *   - every level in a side array has count >= 1;
 *   - the book is never crossed: best bid < best ask;
 *   - a paused command (b->pending) blocks every other mutation.
 *
 * Volatility band (optional, ob_band_set): before a new order matches, a read-only walk
 * of the opposite side -- the match loop without writes, STP and FOK included -- finds
 * the first price it would print; one outside [lo, hi] refuses the order whole. Every
 * print then adds its price to the band state (band_print).
 */
#include "orderbook.h"

#include <stdlib.h>
#include <string.h>

#define NIL UINT32_MAX
#define MAX_POOL (UINT32_MAX - 1u)

typedef struct node {
    int64_t id;
    int64_t owner;
    int64_t qty;     /* remaining qty, > 0 while resting */
    uint32_t next;   /* next in level FIFO, or freelist link */
    uint32_t prev;
    uint32_t level;  /* index into levels */
    uint8_t side;
} node;

typedef struct level {
    int64_t price;
    int64_t total;
    uint32_t head;
    uint32_t tail;
    uint32_t count;
    uint32_t next_free;
} level;

typedef struct side_book {
    int64_t *keys;   /* ascending; best at keys[n-1] */
    uint32_t *lv;    /* level index parallel to keys */
    uint32_t n;
    uint32_t cap;
} side_book;

typedef struct id_entry {
    int64_t key;
    uint32_t val;    /* node index; NIL = empty slot */
    uint32_t pad;
} id_entry;

typedef struct id_map {
    id_entry *slots;
    uint32_t mask;
    uint32_t shift;
    uint32_t used;
} id_map;

enum { T_LIMIT, T_MARKET, T_QUOTE };

typedef struct taker {
    int64_t id;
    int64_t owner;
    int64_t price;    /* limit price; 0 for market orders */
    int64_t rem;      /* remaining qty, or remaining quote budget for T_QUOTE */
    uint8_t type;     /* T_* */
    uint8_t side;
    uint8_t tif;
    uint8_t stp;
} taker;

struct ob_book {
    node *nodes;
    uint32_t node_cap, node_used, free_node;
    level *levels;
    uint32_t level_cap, level_used, free_level;
    side_book sides[2];
    id_map ids;
    size_t n_orders;
    uint64_t seq;
    /* volatility band (ob_band_set); has_band = 0: none */
    ob_band band;
    int has_band;
    int band_stop;   /* set by a refusal in mode OB_BAND_HALT; read by ob_execute_batch */
    /* matching state; valid while a command runs or is paused */
    taker t;
    int pending;
    ob_event *ev;
    size_t cap, n;
};

const char *ob_strerror(ob_result r) {
    switch (r) {
    case OB_OK: return "ok";
    case OB_MORE: return "event buffer full: drain it and resume";
    case OB_ERR_INVALID_QUANTITY: return "invalid quantity";
    case OB_ERR_INVALID_PRICE: return "invalid price";
    case OB_ERR_DUPLICATE_ID: return "duplicate order id";
    case OB_ERR_UNKNOWN_ID: return "unknown order id";
    case OB_ERR_OVERFLOW: return "arithmetic overflow (price * qty or level total exceeds int64)";
    case OB_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case OB_ERR_INVALID_ARGUMENT: return "invalid argument";
    case OB_ERR_NO_MEMORY: return "out of memory";
    case OB_ERR_BUSY: return "a paused command must be resumed first";
    case OB_ERR_BAD_SNAPSHOT: return "invalid snapshot";
    }
    return "unknown result code";
}

/* ---- id map -------------------------------------------------------------- */

static inline uint32_t id_home(const id_map *m, int64_t key) {
    return (uint32_t)(((uint64_t)key * 0x9E3779B97F4A7C15ull) >> m->shift);
}

static int id_init(id_map *m, uint32_t bits) {
    size_t n = (size_t)1 << bits;
    m->slots = malloc(n * sizeof(id_entry));
    if (!m->slots) return 0;
    for (size_t i = 0; i < n; i++) m->slots[i].val = NIL;
    m->mask = (uint32_t)(n - 1);
    m->shift = 64 - bits;
    m->used = 0;
    return 1;
}

static inline uint32_t id_find(const id_map *m, int64_t key) {
    uint32_t i = id_home(m, key);
    for (;;) {
        const id_entry *e = &m->slots[i];
        if (e->val == NIL) return NIL;
        if (e->key == key) return e->val;
        i = (i + 1) & m->mask;
    }
}

static inline void id_put_new(id_map *m, int64_t key, uint32_t val) {
    uint32_t i = id_home(m, key);
    while (m->slots[i].val != NIL) i = (i + 1) & m->mask;
    m->slots[i].key = key;
    m->slots[i].val = val;
    m->used++;
}

/* Ensure one more key fits under a 1/2 load factor. */
static int id_reserve(id_map *m) {
    if ((uint64_t)(m->used + 1) * 2 <= (uint64_t)m->mask + 1) return 1;
    uint32_t bits = 64 - m->shift + 1;
    if (bits > 32) return 0;
    id_map nm;
    if (!id_init(&nm, bits)) return 0;
    for (uint64_t i = 0; i <= m->mask; i++)
        if (m->slots[i].val != NIL) id_put_new(&nm, m->slots[i].key, m->slots[i].val);
    free(m->slots);
    *m = nm;
    return 1;
}

static void id_del(id_map *m, int64_t key) {
    uint32_t i = id_home(m, key);
    while (m->slots[i].key != key || m->slots[i].val == NIL) {
        if (m->slots[i].val == NIL) return; /* not present */
        i = (i + 1) & m->mask;
    }
    /* backward-shift deletion keeps probe chains intact without tombstones */
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & m->mask;
        if (m->slots[j].val == NIL) break;
        uint32_t k = id_home(m, m->slots[j].key);
        int stays = (i <= j) ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].val = NIL;
    m->used--;
}

/* ---- pools --------------------------------------------------------------- */

static int grow_nodes(ob_book *b) {
    if (b->node_cap >= MAX_POOL) return 0;
    uint64_t nc = b->node_cap ? (uint64_t)b->node_cap * 2 : 1024;
    if (nc > MAX_POOL) nc = MAX_POOL;
    node *p = realloc(b->nodes, (size_t)nc * sizeof(node));
    if (!p) return 0;
    b->nodes = p;
    b->node_cap = (uint32_t)nc;
    return 1;
}

static int grow_levels(ob_book *b) {
    if (b->level_cap >= MAX_POOL) return 0;
    uint64_t nc = b->level_cap ? (uint64_t)b->level_cap * 2 : 256;
    if (nc > MAX_POOL) nc = MAX_POOL;
    level *p = realloc(b->levels, (size_t)nc * sizeof(level));
    if (!p) return 0;
    b->levels = p;
    b->level_cap = (uint32_t)nc;
    return 1;
}

static int grow_side(side_book *s) {
    if (s->cap >= MAX_POOL) return 0;
    uint64_t nc = s->cap ? (uint64_t)s->cap * 2 : 256;
    if (nc > MAX_POOL) nc = MAX_POOL;
    int64_t *k = realloc(s->keys, (size_t)nc * sizeof(int64_t));
    if (!k) return 0;
    s->keys = k;
    uint32_t *l = realloc(s->lv, (size_t)nc * sizeof(uint32_t));
    if (!l) return 0;
    s->lv = l;
    s->cap = (uint32_t)nc;
    return 1;
}

/* Make sure one more order can rest (node, id slot, level, side slot) so that the
 * command can never fail half-way. Growth is invisible to callers. */
static int reserve_one(ob_book *b, int side) {
    if (b->free_node == NIL && b->node_used == b->node_cap && !grow_nodes(b)) return 0;
    if (!id_reserve(&b->ids)) return 0;
    if (b->free_level == NIL && b->level_used == b->level_cap && !grow_levels(b)) return 0;
    if (b->sides[side].n == b->sides[side].cap && !grow_side(&b->sides[side])) return 0;
    return 1;
}

static inline uint32_t alloc_node(ob_book *b) {
    uint32_t i = b->free_node;
    if (i != NIL) {
        b->free_node = b->nodes[i].next;
        return i;
    }
    return b->node_used++;
}

static inline void free_node(ob_book *b, uint32_t i) {
    b->nodes[i].next = b->free_node;
    b->free_node = i;
}

static inline uint32_t alloc_level(ob_book *b) {
    uint32_t i = b->free_level;
    if (i != NIL) {
        b->free_level = b->levels[i].next_free;
        return i;
    }
    return b->level_used++;
}

/* ---- sides --------------------------------------------------------------- */

static inline int64_t side_key(int side, int64_t price) { return side == OB_BUY ? price : -price; }

/* Position of key in s (if found, *found = 1) or where it would be inserted. */
static inline uint32_t side_search(const side_book *s, int64_t key, int *found) {
    if (s->n && s->keys[s->n - 1] == key) { *found = 1; return s->n - 1; }
    if (s->n == 0) { *found = 0; return 0; }
    /* branchless lower bound: the compiler turns the select into a cmov */
    const int64_t *base = s->keys;
    uint32_t len = s->n;
    while (len > 1) {
        uint32_t half = len / 2;
        base += (base[half - 1] < key) ? half : 0;
        len -= half;
    }
    uint32_t lo = (uint32_t)(base - s->keys) + (*base < key);
    *found = (lo < s->n && s->keys[lo] == key);
    return lo;
}

static uint32_t find_level(const ob_book *b, int side, int64_t price) {
    int found;
    const side_book *s = &b->sides[side];
    uint32_t pos = side_search(s, side_key(side, price), &found);
    return found ? s->lv[pos] : NIL;
}

/* Level for (side, price), created if missing. Space was reserved. */
static uint32_t get_or_add_level(ob_book *b, int side, int64_t price) {
    side_book *s = &b->sides[side];
    int64_t key = side_key(side, price);
    int found;
    uint32_t pos = side_search(s, key, &found);
    if (found) return s->lv[pos];
    uint32_t li = alloc_level(b);
    level *lv = &b->levels[li];
    lv->price = price;
    lv->total = 0;
    lv->head = lv->tail = NIL;
    lv->count = 0;
    if (pos < s->n) {
        memmove(&s->keys[pos + 1], &s->keys[pos], (size_t)(s->n - pos) * sizeof(int64_t));
        memmove(&s->lv[pos + 1], &s->lv[pos], (size_t)(s->n - pos) * sizeof(uint32_t));
    }
    s->keys[pos] = key;
    s->lv[pos] = li;
    s->n++;
    return li;
}

static void remove_level(ob_book *b, int side, uint32_t li) {
    side_book *s = &b->sides[side];
    int64_t key = side_key(side, b->levels[li].price);
    int found;
    uint32_t pos = side_search(s, key, &found);
    if (pos + 1 < s->n) {
        memmove(&s->keys[pos], &s->keys[pos + 1], (size_t)(s->n - pos - 1) * sizeof(int64_t));
        memmove(&s->lv[pos], &s->lv[pos + 1], (size_t)(s->n - pos - 1) * sizeof(uint32_t));
    }
    s->n--;
    b->levels[li].next_free = b->free_level;
    b->free_level = li;
}

/* Append a new resting order at the tail of its level. Space was reserved. */
static void rest_order(ob_book *b, int64_t id, int64_t owner, int side, int64_t price, int64_t qty) {
    uint32_t li = get_or_add_level(b, side, price);
    uint32_t ni = alloc_node(b);
    node *n = &b->nodes[ni];
    level *lv = &b->levels[li];
    n->id = id;
    n->owner = owner;
    n->qty = qty;
    n->side = (uint8_t)side;
    n->level = li;
    n->next = NIL;
    n->prev = lv->tail;
    if (lv->tail != NIL) b->nodes[lv->tail].next = ni; else lv->head = ni;
    lv->tail = ni;
    lv->count++;
    lv->total += qty;
    id_put_new(&b->ids, id, ni);
    b->n_orders++;
}

/* Remove a resting order; its remaining qty leaves the level total. */
static void unlink_order(ob_book *b, uint32_t ni) {
    node *n = &b->nodes[ni];
    level *lv = &b->levels[n->level];
    if (n->prev != NIL) b->nodes[n->prev].next = n->next; else lv->head = n->next;
    if (n->next != NIL) b->nodes[n->next].prev = n->prev; else lv->tail = n->prev;
    lv->count--;
    lv->total -= n->qty;
    if (lv->count == 0) remove_level(b, n->side, n->level);
    id_del(&b->ids, n->id);
    free_node(b, ni);
    b->n_orders--;
}

/* ---- events -------------------------------------------------------------- */

static inline ob_event *emit(ob_book *b, int kind, int reason, int64_t order_id, int side,
                             int64_t owner, int64_t price, int64_t qty, int64_t remaining) {
    ob_event *e = &b->ev[b->n++];
    e->order_id = order_id;
    e->price = price;
    e->qty = qty;
    e->maker_id = 0;
    e->maker_owner = 0;
    e->taker_owner = owner;
    e->maker_remaining = 0;
    e->taker_remaining = remaining;
    e->kind = (uint8_t)kind;
    e->reason = (uint8_t)reason;
    e->side = (uint8_t)side;
    memset(e->pad, 0, sizeof e->pad);
    return e;
}

static inline void emit_reject(ob_book *b, const ob_command *c, int reason) {
    emit(b, OB_EV_REJECTED, reason, c->order_id, c->side, c->owner, c->price, c->qty, 0);
}

/* ---- matching ------------------------------------------------------------ */

static inline int crosses(int taker_side, int64_t maker_price, int64_t limit) {
    return taker_side == OB_BUY ? maker_price <= limit : maker_price >= limit;
}

/* Would a FOK limit taker be filled completely? Simulates the match loop,
 * including STP: own makers are skipped under EXPIRE_MAKER and stop the fill
 * under the other modes. Reads only. */
static int fok_fillable(const ob_book *b, const taker *t) {
    const side_book *s = &b->sides[!t->side];
    int64_t need = t->rem;
    for (uint32_t k = s->n; k-- > 0;) {
        const level *lv = &b->levels[s->lv[k]];
        if (!crosses(t->side, lv->price, t->price)) return 0;
        if (t->stp == OB_STP_NONE) {
            if (lv->total >= need) return 1;
            need -= lv->total;
            continue;
        }
        for (uint32_t ni = lv->head; ni != NIL; ni = b->nodes[ni].next) {
            const node *m = &b->nodes[ni];
            if (m->owner == t->owner) {
                if (t->stp == OB_STP_EXPIRE_MAKER) continue;
                return 0;
            }
            if (m->qty >= need) return 1;
            need -= m->qty;
        }
    }
    return 0;
}

/* ---- volatility band ----------------------------------------------------- */

typedef __int128 i128;

static inline i128 floor_div(i128 a, i128 d) { /* d > 0 */
    i128 q = a / d;
    return (a % d != 0 && a < 0) ? q - 1 : q;
}
static inline i128 ceil_div(i128 a, i128 d) { /* d > 0 */
    i128 q = a / d;
    return (a % d != 0 && a > 0) ? q + 1 : q;
}
static inline int64_t clamp64(i128 v) {
    return v > INT64_MAX ? INT64_MAX : v < INT64_MIN ? INT64_MIN : (int64_t)v;
}

int ob_band_limits(const ob_band *bd, int64_t *lo, int64_t *hi) {
    if (!bd || bd->last <= 0 || bd->static_den <= 0 || bd->dynamic_den <= 0) return 0;
    i128 rn = bd->ref_count ? bd->ref_sum : bd->last, rd = bd->ref_count ? bd->ref_count : 1;
    i128 h = bd->dyn_count ? bd->high : bd->last, l = bd->dyn_count ? bd->low : bd->last;
    i128 s = (i128)100 * bd->static_den, x = (i128)100 * bd->dynamic_den;
    i128 lo_s = ceil_div(rn * (s - bd->static_num), rd * s);
    i128 hi_s = floor_div(rn * (s + bd->static_num), rd * s);
    i128 lo_d = ceil_div(l * (x - bd->dynamic_num), x);
    i128 hi_d = floor_div(h * (x + bd->dynamic_num), x);
    if (lo) *lo = clamp64(lo_s > lo_d ? lo_s : lo_d);
    if (hi) *hi = clamp64(hi_s < hi_d ? hi_s : hi_d);
    return 1;
}

/* A print at p joins both windows. */
static void band_print(ob_band *bd, int64_t p) {
    bd->last = p;
    if (bd->ref_sum <= INT64_MAX - p) { /* documented bound: the sum stays below 2^63 */
        bd->ref_sum += p;
        bd->ref_count++;
    }
    if (bd->dyn_count == 0 || p > bd->high) bd->high = p;
    if (bd->dyn_count == 0 || p < bd->low) bd->low = p;
    bd->dyn_count++;
}

/* The first price a new order would print at outside [lo, hi]: the match loop of
 * run_taker without writes. Returns 1 and *at if there is one, else 0. */
static int first_print_outside(const ob_book *b, const taker *t, int64_t lo, int64_t hi, int64_t *at) {
    if (t->type == T_LIMIT && t->tif == OB_FOK && !fok_fillable(b, t)) return 0; /* expires unprinted */
    const side_book *s = &b->sides[!t->side];
    int quote = t->type == T_QUOTE;
    int64_t rem = t->rem;
    for (uint32_t k = s->n; k-- > 0;) {
        const level *lv = &b->levels[s->lv[k]];
        int64_t p = lv->price;
        if (t->type == T_LIMIT && !crosses(t->side, p, t->price)) return 0;
        if (t->stp == OB_STP_NONE) {
            int64_t avail = quote ? rem / p : rem;
            if (avail == 0) return 0;
            if (p < lo || p > hi) { *at = p; return 1; }
            int64_t q = avail < lv->total ? avail : lv->total;
            rem -= quote ? q * p : q;
            if (rem == 0) return 0;
            continue;
        }
        for (uint32_t ni = lv->head; ni != NIL; ni = b->nodes[ni].next) {
            const node *m = &b->nodes[ni];
            int64_t avail = quote ? rem / p : rem;
            if (avail == 0) return 0;
            int64_t q = avail < m->qty ? avail : m->qty;
            if (m->owner == t->owner) {
                if (t->stp == OB_STP_EXPIRE_MAKER) continue;
                if (t->stp != OB_STP_DECREMENT) return 0; /* EXPIRE_TAKER / EXPIRE_BOTH: ends */
            } else if (p < lo || p > hi) {
                *at = p;
                return 1;
            }
            rem -= quote ? q * p : q; /* a fill, or a decrement: both use up the taker */
            if (rem == 0) return 0;
        }
    }
    return 0;
}

/* With a band armed: refuse a new order that would print outside it (one REJECTED event,
 * nothing changed) and say 1; else 0. */
static int band_refuses(ob_book *b, const taker *t, int64_t qty_shown) {
    int64_t lo, hi, at;
    if (!b->has_band || !ob_band_limits(&b->band, &lo, &hi)) return 0;
    if (!first_print_outside(b, t, lo, hi, &at)) return 0;
    emit(b, OB_EV_REJECTED, OB_REASON_OUTSIDE_BAND, t->id, t->side, t->owner, at, qty_shown, 0);
    if (b->band.mode == OB_BAND_HALT) b->band_stop = 1;
    return 1;
}

/* Run (or continue) the current taker until done or the buffer is nearly full.
 * Every step writes at most 2 events and the final step 1, so a step starts only
 * with >= 3 free slots. */
static ob_result run_taker(ob_book *b) {
    taker *t = &b->t;
    side_book *opp = &b->sides[!t->side];
    int end_reason = OB_REASON_NO_LIQUIDITY;
    while (t->rem > 0) {
        if (opp->n == 0) break;
        uint32_t li = opp->lv[opp->n - 1];
        level *lv = &b->levels[li];
        int64_t p = lv->price;
        if (t->type == T_LIMIT && !crosses(t->side, p, t->price)) break;
        int64_t avail = t->rem;
        if (t->type == T_QUOTE) {
            avail = t->rem / p;
            if (avail == 0) { end_reason = OB_REASON_BUDGET_EXHAUSTED; break; }
        }
        if (b->cap - b->n < 3) {
            b->pending = 1;
            return OB_MORE;
        }
        uint32_t mi = lv->head;
        node *m = &b->nodes[mi];
        if (t->stp != OB_STP_NONE && m->owner == t->owner) {
            switch (t->stp) {
            case OB_STP_EXPIRE_TAKER:
                emit(b, OB_EV_EXPIRED, OB_REASON_STP_EXPIRE_TAKER, t->id, t->side, t->owner,
                     t->price, t->rem, 0);
                t->rem = 0;
                goto done;
            case OB_STP_EXPIRE_MAKER:
            case OB_STP_EXPIRE_BOTH: {
                int reason = t->stp == OB_STP_EXPIRE_MAKER ? OB_REASON_STP_EXPIRE_MAKER
                                                           : OB_REASON_STP_EXPIRE_BOTH;
                emit(b, OB_EV_EXPIRED, reason, m->id, m->side, m->owner, p, m->qty, 0);
                unlink_order(b, mi);
                if (t->stp == OB_STP_EXPIRE_BOTH) {
                    emit(b, OB_EV_EXPIRED, reason, t->id, t->side, t->owner, t->price, t->rem, 0);
                    t->rem = 0;
                    goto done;
                }
                continue;
            }
            default: { /* OB_STP_DECREMENT */
                int64_t d = avail < m->qty ? avail : m->qty;
                m->qty -= d;
                lv->total -= d;
                emit(b, m->qty ? OB_EV_REDUCED : OB_EV_EXPIRED, OB_REASON_STP_DECREMENT, m->id,
                     m->side, m->owner, p, d, m->qty);
                if (m->qty == 0) unlink_order(b, mi);
                int64_t td = t->type == T_QUOTE ? d * p : d;
                t->rem -= td;
                emit(b, t->rem ? OB_EV_REDUCED : OB_EV_EXPIRED, OB_REASON_STP_DECREMENT, t->id,
                     t->side, t->owner, t->price, td, t->rem);
                if (t->rem == 0) goto done;
                continue;
            }
            }
        }
        int64_t q = avail < m->qty ? avail : m->qty;
        m->qty -= q;
        lv->total -= q;
        t->rem -= t->type == T_QUOTE ? q * p : q;
        ob_event *e = &b->ev[b->n++];
        e->order_id = t->id;
        e->price = p;
        e->qty = q;
        e->maker_id = m->id;
        e->maker_owner = m->owner;
        e->taker_owner = t->owner;
        e->maker_remaining = m->qty;
        e->taker_remaining = t->rem;
        e->kind = OB_EV_TRADE;
        e->reason = OB_REASON_NONE;
        e->side = t->side;
        memset(e->pad, 0, sizeof e->pad);
        if (b->has_band) band_print(&b->band, p);
        if (m->qty == 0) {
            /* fast path of unlink_order for the head of the best level */
            lv->head = m->next;
            if (m->next != NIL) b->nodes[m->next].prev = NIL; else lv->tail = NIL;
            id_del(&b->ids, m->id);
            free_node(b, mi);
            b->n_orders--;
            if (--lv->count == 0) {
                opp->n--;
                lv->next_free = b->free_level;
                b->free_level = li;
            }
        }
    }
    if (t->rem > 0) {
        if (t->type == T_LIMIT) {
            if (t->tif == OB_GTC) {
                rest_order(b, t->id, t->owner, t->side, t->price, t->rem);
            } else {
                emit(b, OB_EV_EXPIRED,
                     t->tif == OB_IOC ? OB_REASON_IOC_REMAINDER : OB_REASON_FOK_UNFILLABLE,
                     t->id, t->side, t->owner, t->price, t->rem, 0);
            }
        } else {
            emit(b, OB_EV_EXPIRED, end_reason, t->id, t->side, t->owner, 0, t->rem, 0);
        }
    }
done:
    b->pending = 0;
    return OB_OK;
}

static inline int valid_stp(int stp) { return stp >= OB_STP_NONE && stp <= OB_STP_DECREMENT; }

static inline int mul_overflows(int64_t a, int64_t b) { return a > INT64_MAX / b; } /* a,b > 0 */

/* Would a new GTC order of qty at (side, price) overflow its level's total?
 * `minus` is subtracted first (the replaced order's own qty when it sits there). */
static int level_would_overflow(const ob_book *b, int side, int64_t price, int64_t qty, int64_t minus) {
    uint32_t li = find_level(b, side, price);
    if (li == NIL) return 0;
    return b->levels[li].total - minus > INT64_MAX - qty;
}

static void taker_init(taker *t, int type, const ob_command *c, int64_t owner, int side) {
    t->id = c->order_id;
    t->owner = owner;
    t->side = (uint8_t)side;
    t->type = (uint8_t)type;
    t->price = type == T_LIMIT ? c->price : 0;
    t->rem = c->qty;
    t->tif = type == T_LIMIT ? c->tif : OB_IOC;
    t->stp = c->stp;
}

static ob_result start_taker(ob_book *b, int type, const ob_command *c, int64_t owner, int side) {
    taker *t = &b->t;
    taker_init(t, type, c, owner, side);
    if (band_refuses(b, t, c->qty)) return OB_OK;
    b->seq++;
    emit(b, OB_EV_ACCEPTED, OB_REASON_NONE, t->id, side, owner, t->price, t->rem, t->rem);
    if (type == T_LIMIT && t->tif == OB_FOK && !fok_fillable(b, t)) {
        emit(b, OB_EV_EXPIRED, OB_REASON_FOK_UNFILLABLE, t->id, side, owner, t->price, t->rem, 0);
        return OB_OK;
    }
    return run_taker(b);
}

/* Validate and apply one command. On an error nothing was written or changed.
 * The caller guarantees b->cap - b->n >= OB_MIN_EVENTS and no pending command. */
static ob_result apply(ob_book *b, const ob_command *c) {
    switch (c->type) {
    case OB_CMD_LIMIT: {
        if (c->side > OB_SELL || c->tif > OB_FOK || !valid_stp(c->stp) || (c->flags & ~OB_FLAG_POST_ONLY))
            return OB_ERR_INVALID_ARGUMENT;
        int post_only = c->flags & OB_FLAG_POST_ONLY;
        if (post_only && c->tif != OB_GTC) return OB_ERR_INVALID_ARGUMENT;
        if (c->qty <= 0) return OB_ERR_INVALID_QUANTITY;
        if (c->price <= 0) return OB_ERR_INVALID_PRICE;
        if (mul_overflows(c->price, c->qty)) return OB_ERR_OVERFLOW;
        if (id_find(&b->ids, c->order_id) != NIL) return OB_ERR_DUPLICATE_ID;
        if (c->tif == OB_GTC) {
            if (level_would_overflow(b, c->side, c->price, c->qty, 0)) return OB_ERR_OVERFLOW;
            if (!reserve_one(b, c->side)) return OB_ERR_NO_MEMORY;
        }
        if (post_only) {
            const side_book *opp = &b->sides[!c->side];
            if (opp->n && crosses(c->side, b->levels[opp->lv[opp->n - 1]].price, c->price)) {
                emit_reject(b, c, OB_REASON_POST_ONLY_WOULD_TAKE);
                return OB_OK;
            }
        }
        return start_taker(b, T_LIMIT, c, c->owner, c->side);
    }
    case OB_CMD_MARKET:
    case OB_CMD_MARKET_QUOTE: {
        int quote = c->type == OB_CMD_MARKET_QUOTE;
        int side = quote ? OB_BUY : c->side;
        if (side > OB_SELL || !valid_stp(c->stp)) return OB_ERR_INVALID_ARGUMENT;
        if (c->qty <= 0) return OB_ERR_INVALID_QUANTITY;
        if (id_find(&b->ids, c->order_id) != NIL) return OB_ERR_DUPLICATE_ID;
        return start_taker(b, quote ? T_QUOTE : T_MARKET, c, c->owner, side);
    }
    case OB_CMD_CANCEL: {
        uint32_t ni = id_find(&b->ids, c->order_id);
        if (ni == NIL) return OB_ERR_UNKNOWN_ID;
        node *n = &b->nodes[ni];
        emit(b, OB_EV_CANCELLED, OB_REASON_USER_CANCEL, n->id, n->side, n->owner,
             b->levels[n->level].price, n->qty, 0);
        unlink_order(b, ni);
        b->seq++;
        return OB_OK;
    }
    case OB_CMD_REDUCE: {
        uint32_t ni = id_find(&b->ids, c->order_id);
        if (ni == NIL) return OB_ERR_UNKNOWN_ID;
        node *n = &b->nodes[ni];
        if (c->qty <= 0 || c->qty >= n->qty) return OB_ERR_INVALID_QUANTITY;
        int64_t d = n->qty - c->qty;
        n->qty = c->qty;
        b->levels[n->level].total -= d;
        emit(b, OB_EV_REDUCED, OB_REASON_USER_REDUCE, n->id, n->side, n->owner,
             b->levels[n->level].price, d, n->qty);
        b->seq++;
        return OB_OK;
    }
    case OB_CMD_REPLACE: {
        if (!valid_stp(c->stp) || (c->flags & ~OB_FLAG_POST_ONLY)) return OB_ERR_INVALID_ARGUMENT;
        uint32_t ni = id_find(&b->ids, c->order_id);
        if (ni == NIL) return OB_ERR_UNKNOWN_ID;
        if (c->qty <= 0) return OB_ERR_INVALID_QUANTITY;
        if (c->price <= 0) return OB_ERR_INVALID_PRICE;
        if (mul_overflows(c->price, c->qty)) return OB_ERR_OVERFLOW;
        node *n = &b->nodes[ni];
        int side = n->side;
        int64_t owner = n->owner;
        int64_t old_price = b->levels[n->level].price;
        if (level_would_overflow(b, side, c->price, c->qty, old_price == c->price ? n->qty : 0))
            return OB_ERR_OVERFLOW;
        if (!reserve_one(b, side)) return OB_ERR_NO_MEMORY;
        n = &b->nodes[ni]; /* reserve_one may have moved the pool */
        if (c->flags & OB_FLAG_POST_ONLY) {
            const side_book *opp = &b->sides[!side];
            if (opp->n && crosses(side, b->levels[opp->lv[opp->n - 1]].price, c->price)) {
                emit(b, OB_EV_REJECTED, OB_REASON_POST_ONLY_WOULD_TAKE, c->order_id, side, owner,
                     c->price, c->qty, 0);
                return OB_OK;
            }
        }
        ob_command nc = *c;
        nc.tif = OB_GTC; /* start_taker counts the replace as one command */
        taker probe; /* the band is checked before the old order leaves the book */
        taker_init(&probe, T_LIMIT, &nc, owner, side);
        if (band_refuses(b, &probe, c->qty)) return OB_OK;
        emit(b, OB_EV_CANCELLED, OB_REASON_REPLACED, n->id, side, owner, old_price, n->qty, 0);
        unlink_order(b, ni);
        return start_taker(b, T_LIMIT, &nc, owner, side);
    }
    default:
        return OB_ERR_INVALID_ARGUMENT;
    }
}

static inline void begin(ob_book *b, ob_event *ev, size_t cap) {
    b->ev = ev;
    b->cap = cap;
    b->n = 0;
}

ob_result ob_execute(ob_book *b, const ob_command *cmd, ob_event *ev, size_t cap, size_t *n_events) {
    if (n_events) *n_events = 0;
    if (!b || !cmd || !ev || !n_events) return OB_ERR_INVALID_ARGUMENT;
    if (b->pending) return OB_ERR_BUSY;
    if (cap < OB_MIN_EVENTS) return OB_ERR_BUFFER_TOO_SMALL;
    begin(b, ev, cap);
    ob_result r = apply(b, cmd);
    *n_events = b->n;
    return r;
}

ob_result ob_resume(ob_book *b, ob_event *ev, size_t cap, size_t *n_events) {
    if (n_events) *n_events = 0;
    if (!b || !ev || !n_events) return OB_ERR_INVALID_ARGUMENT;
    if (!b->pending) return OB_OK;
    if (cap < OB_MIN_EVENTS) return OB_ERR_BUFFER_TOO_SMALL;
    begin(b, ev, cap);
    ob_result r = run_taker(b);
    *n_events = b->n;
    return r;
}

int ob_pending(const ob_book *b) { return b && b->pending; }

ob_result ob_execute_batch(ob_book *b, const ob_command *cmds, size_t n, ob_event *ev, size_t cap,
                           size_t *n_events, size_t *n_consumed) {
    if (n_events) *n_events = 0;
    if (n_consumed) *n_consumed = 0;
    if (!b || (!cmds && n) || !ev || !n_events || !n_consumed) return OB_ERR_INVALID_ARGUMENT;
    if (b->pending) return OB_ERR_BUSY;
    if (cap < OB_MIN_EVENTS) return OB_ERR_BUFFER_TOO_SMALL;
    begin(b, ev, cap);
    size_t i = 0;
    ob_result r = OB_OK;
    for (; i < n; i++) {
        if (b->cap - b->n < OB_MIN_EVENTS) { r = OB_MORE; break; }
        b->band_stop = 0;
        ob_result ar = apply(b, &cmds[i]);
        if (ar == OB_MORE) { i++; r = OB_MORE; break; }
        if (ar != OB_OK) emit_reject(b, &cmds[i], OB_REASON_REJECT_BASE + (int)ar);
        if (b->band_stop) { i++; break; } /* OB_BAND_HALT: the refused command ends the batch */
    }
    *n_events = b->n;
    *n_consumed = i;
    return r;
}

/* ---- volatility band (public) --------------------------------------------- */

ob_result ob_band_set(ob_book *b, const ob_band *band) {
    if (!b) return OB_ERR_INVALID_ARGUMENT;
    if (b->pending) return OB_ERR_BUSY;
    if (!band) {
        b->has_band = 0;
        return OB_OK;
    }
    if (band->ref_sum < 0 || band->ref_count < 0 || band->dyn_count < 0 || band->static_num < 0 ||
        band->dynamic_num < 0 || band->static_den <= 0 || band->dynamic_den <= 0 ||
        band->mode > OB_BAND_SKIP || ((band->ref_count || band->dyn_count) && band->last <= 0) ||
        (band->dyn_count && (band->low <= 0 || band->low > band->high)))
        return OB_ERR_INVALID_ARGUMENT;
    b->band = *band;
    memset(b->band.pad, 0, sizeof b->band.pad);
    b->has_band = 1;
    return OB_OK;
}

int ob_band_get(const ob_book *b, ob_band *out) {
    if (!b || !out || !b->has_band) return 0;
    *out = b->band;
    return 1;
}

/* ---- queries ------------------------------------------------------------- */

int ob_best(const ob_book *b, int side, int64_t *price, int64_t *qty) {
    if (!b || side < 0 || side > 1) return 0;
    const side_book *s = &b->sides[side];
    if (!s->n) return 0;
    const level *lv = &b->levels[s->lv[s->n - 1]];
    if (price) *price = lv->price;
    if (qty) *qty = lv->total;
    return 1;
}

size_t ob_depth(const ob_book *b, int side, ob_level_info *out, size_t max) {
    if (!b || side < 0 || side > 1 || !out) return 0;
    const side_book *s = &b->sides[side];
    size_t k = 0;
    for (uint32_t i = s->n; i-- > 0 && k < max; k++) {
        const level *lv = &b->levels[s->lv[i]];
        out[k].price = lv->price;
        out[k].qty = lv->total;
        out[k].count = lv->count;
    }
    return k;
}

ob_result ob_get_order(const ob_book *b, int64_t order_id, ob_order_info *out) {
    if (!b || !out) return OB_ERR_INVALID_ARGUMENT;
    uint32_t ni = id_find(&b->ids, order_id);
    if (ni == NIL) return OB_ERR_UNKNOWN_ID;
    const node *n = &b->nodes[ni];
    memset(out, 0, sizeof *out);
    out->order_id = n->id;
    out->owner = n->owner;
    out->price = b->levels[n->level].price;
    out->remaining = n->qty;
    out->side = n->side;
    return OB_OK;
}

size_t ob_order_count(const ob_book *b) { return b ? b->n_orders : 0; }

size_t ob_level_count(const ob_book *b, int side) {
    return (b && side >= 0 && side <= 1) ? b->sides[side].n : 0;
}

uint64_t ob_sequence(const ob_book *b) { return b ? b->seq : 0; }

/* ---- lifecycle ----------------------------------------------------------- */

ob_book *ob_book_new(size_t expected_orders) {
    ob_book *b = calloc(1, sizeof *b);
    if (!b) return NULL;
    b->free_node = NIL;
    b->free_level = NIL;
    uint32_t bits = 10;
    while (bits < 31 && ((size_t)1 << bits) < expected_orders * 2) bits++;
    int ok = id_init(&b->ids, bits);
    if (ok && expected_orders) {
        size_t cap = expected_orders > MAX_POOL ? MAX_POOL : expected_orders;
        b->nodes = malloc(cap * sizeof(node));
        ok = b->nodes != NULL;
        if (ok) b->node_cap = (uint32_t)cap;
    }
    if (!ok) {
        ob_book_free(b);
        return NULL;
    }
    return b;
}

void ob_book_free(ob_book *b) {
    if (!b) return;
    free(b->nodes);
    free(b->levels);
    free(b->sides[0].keys);
    free(b->sides[0].lv);
    free(b->sides[1].keys);
    free(b->sides[1].lv);
    free(b->ids.slots);
    free(b);
}

/* ---- snapshot -------------------------------------------------------------
 * Layout (all integers little-endian):
 *   0  magic "KK99OB\0\1" (8)     8  u32 version = 1, u32 reserved = 0
 *   16 u64 sequence               24 u64 bid orders     32 u64 ask orders
 *   40 records, bids then asks, each side best level first and FIFO within a
 *      level: i64 order_id, i64 owner, i64 price, i64 qty  (32 bytes each)
 *   .. u64 FNV-1a-64 of every preceding byte
 */
static const uint8_t SNAP_MAGIC[8] = {'K', 'K', '9', '9', 'O', 'B', 0, 1};
#define SNAP_HEADER 40u
#define SNAP_RECORD 32u

static inline void put64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint64_t get64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}
static uint64_t fnv1a(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ull; }
    return h;
}

size_t ob_snapshot_size(const ob_book *b) {
    return b ? SNAP_HEADER + SNAP_RECORD * b->n_orders + 8 : 0;
}

ob_result ob_snapshot_write(const ob_book *b, uint8_t *buf, size_t cap, size_t *written) {
    if (written) *written = 0;
    if (!b || !buf || !written) return OB_ERR_INVALID_ARGUMENT;
    if (b->pending) return OB_ERR_BUSY;
    size_t need = ob_snapshot_size(b);
    if (cap < need) return OB_ERR_BUFFER_TOO_SMALL;
    memcpy(buf, SNAP_MAGIC, 8);
    put64(buf + 8, 1);
    put64(buf + 16, b->seq);
    uint8_t *p = buf + SNAP_HEADER;
    for (int side = 0; side < 2; side++) {
        const side_book *s = &b->sides[side];
        uint64_t count = 0;
        for (uint32_t i = s->n; i-- > 0;) {
            const level *lv = &b->levels[s->lv[i]];
            for (uint32_t ni = lv->head; ni != NIL; ni = b->nodes[ni].next) {
                const node *n = &b->nodes[ni];
                put64(p, (uint64_t)n->id);
                put64(p + 8, (uint64_t)n->owner);
                put64(p + 16, (uint64_t)lv->price);
                put64(p + 24, (uint64_t)n->qty);
                p += SNAP_RECORD;
                count++;
            }
        }
        put64(buf + 24 + 8 * side, count);
    }
    put64(p, fnv1a(buf, (size_t)(p - buf)));
    *written = need;
    return OB_OK;
}

ob_result ob_book_restore(const uint8_t *buf, size_t len, ob_book **out) {
    if (!out) return OB_ERR_INVALID_ARGUMENT;
    *out = NULL;
    if (!buf || len < SNAP_HEADER + 8) return OB_ERR_BAD_SNAPSHOT;
    if (memcmp(buf, SNAP_MAGIC, 8) != 0 || get64(buf + 8) != 1) return OB_ERR_BAD_SNAPSHOT;
    uint64_t counts[2] = {get64(buf + 24), get64(buf + 32)};
    uint64_t max_records = (len - SNAP_HEADER - 8) / SNAP_RECORD;
    if (counts[0] > max_records || counts[1] > max_records - counts[0]) return OB_ERR_BAD_SNAPSHOT;
    uint64_t total = counts[0] + counts[1];
    if (SNAP_HEADER + SNAP_RECORD * total + 8 != len || total > MAX_POOL) return OB_ERR_BAD_SNAPSHOT;
    if (fnv1a(buf, len - 8) != get64(buf + len - 8)) return OB_ERR_BAD_SNAPSHOT;

    ob_book *b = ob_book_new((size_t)total);
    if (!b) return OB_ERR_NO_MEMORY;
    b->seq = get64(buf + 16);
    const uint8_t *p = buf + SNAP_HEADER;
    ob_result r = OB_OK;
    for (int side = 0; side < 2 && r == OB_OK; side++) {
        side_book *s = &b->sides[side];
        uint32_t cur = NIL; /* level being filled */
        /* Levels arrive best first; they are appended and the arrays reversed after. */
        for (uint64_t i = 0; i < counts[side]; i++, p += SNAP_RECORD) {
            int64_t id = (int64_t)get64(p), owner = (int64_t)get64(p + 8);
            int64_t price = (int64_t)get64(p + 16), qty = (int64_t)get64(p + 24);
            if (price <= 0 || qty <= 0 || mul_overflows(price, qty) || id_find(&b->ids, id) != NIL) {
                r = OB_ERR_BAD_SNAPSHOT;
                break;
            }
            if (cur == NIL || b->levels[cur].price != price) {
                /* each new level must be strictly worse than the previous one */
                if (cur != NIL && side_key(side, price) >= side_key(side, b->levels[cur].price)) {
                    r = OB_ERR_BAD_SNAPSHOT;
                    break;
                }
                if (!reserve_one(b, side)) { r = OB_ERR_NO_MEMORY; break; }
                cur = alloc_level(b);
                level *lv = &b->levels[cur];
                lv->price = price;
                lv->total = 0;
                lv->head = lv->tail = NIL;
                lv->count = 0;
                s->keys[s->n] = side_key(side, price);
                s->lv[s->n] = cur;
                s->n++;
            } else if (!reserve_one(b, side)) {
                r = OB_ERR_NO_MEMORY;
                break;
            }
            if (b->levels[cur].total > INT64_MAX - qty) { r = OB_ERR_BAD_SNAPSHOT; break; }
            uint32_t ni = alloc_node(b);
            node *n = &b->nodes[ni];
            level *lv = &b->levels[cur];
            n->id = id;
            n->owner = owner;
            n->qty = qty;
            n->side = (uint8_t)side;
            n->level = cur;
            n->next = NIL;
            n->prev = lv->tail;
            if (lv->tail != NIL) b->nodes[lv->tail].next = ni; else lv->head = ni;
            lv->tail = ni;
            lv->count++;
            lv->total += qty;
            id_put_new(&b->ids, id, ni);
            b->n_orders++;
        }
        for (uint32_t i = 0, j = s->n; r == OB_OK && i + 1 < j; i++, j--) {
            int64_t k = s->keys[i]; s->keys[i] = s->keys[j - 1]; s->keys[j - 1] = k;
            uint32_t l = s->lv[i]; s->lv[i] = s->lv[j - 1]; s->lv[j - 1] = l;
        }
    }
    if (r == OB_OK && b->sides[0].n && b->sides[1].n &&
        b->levels[b->sides[0].lv[b->sides[0].n - 1]].price >=
            b->levels[b->sides[1].lv[b->sides[1].n - 1]].price)
        r = OB_ERR_BAD_SNAPSHOT; /* crossed book */
    if (r != OB_OK) {
        ob_book_free(b);
        return r;
    }
    *out = b;
    return OB_OK;
}
