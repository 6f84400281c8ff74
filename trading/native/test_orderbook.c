/* test_orderbook.c -- unit tests for the C order book. Prints "N passed, N failed"
 * and exits non-zero on any failure. Run with `make -C trading/native test`. */
#include "orderbook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int g_passed, g_failed, g_cur_failed;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "  %s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            g_cur_failed = 1;                                                         \
        }                                                                             \
    } while (0)

#define RUN(fn)                                  \
    do {                                         \
        g_cur_failed = 0;                        \
        fn();                                    \
        if (g_cur_failed) {                      \
            g_failed++;                          \
            fprintf(stderr, "FAIL %s\n", #fn);   \
        } else {                                 \
            g_passed++;                          \
        }                                        \
    } while (0)

#define CAP 256
static ob_event EV[CAP];
static size_t NEV;

static ob_command cmd(int type, int64_t id, int64_t owner, int side, int64_t price, int64_t qty) {
    ob_command c;
    memset(&c, 0, sizeof c);
    c.type = (uint8_t)type;
    c.order_id = id;
    c.owner = owner;
    c.side = (uint8_t)side;
    c.price = price;
    c.qty = qty;
    return c;
}

static ob_result run(ob_book *b, ob_command c) { return ob_execute(b, &c, EV, CAP, &NEV); }
static ob_result limit(ob_book *b, int64_t id, int64_t owner, int side, int64_t price, int64_t qty) {
    return run(b, cmd(OB_CMD_LIMIT, id, owner, side, price, qty));
}
static ob_result limit_x(ob_book *b, int64_t id, int64_t owner, int side, int64_t price, int64_t qty,
                         int tif, int flags, int stp) {
    ob_command c = cmd(OB_CMD_LIMIT, id, owner, side, price, qty);
    c.tif = (uint8_t)tif;
    c.flags = (uint8_t)flags;
    c.stp = (uint8_t)stp;
    return run(b, c);
}
static int64_t best_price(ob_book *b, int side) {
    int64_t p = 0, q = 0;
    return ob_best(b, side, &p, &q) ? p : -1;
}
static int64_t best_qty(ob_book *b, int side) {
    int64_t p = 0, q = 0;
    return ob_best(b, side, &p, &q) ? q : -1;
}
static int64_t remaining(ob_book *b, int64_t id) {
    ob_order_info o;
    return ob_get_order(b, id, &o) == OB_OK ? o.remaining : -1;
}
static int count_kind(int kind) {
    int n = 0;
    for (size_t i = 0; i < NEV; i++) n += EV[i].kind == kind;
    return n;
}

/* snapshot bytes, for "book unchanged" checks */
static uint8_t *snap(ob_book *b, size_t *len) {
    size_t n = ob_snapshot_size(b);
    uint8_t *buf = malloc(n);
    ob_snapshot_write(b, buf, n, len);
    return buf;
}
static int same_book(ob_book *b, const uint8_t *s, size_t len) {
    size_t n;
    uint8_t *t = snap(b, &n);
    int same = n == len && memcmp(s, t, n) == 0;
    free(t);
    return same;
}

/* ---- tests ---- */

static void test_empty_book_has_no_best_and_no_depth(void) {
    ob_book *b = ob_book_new(0);
    ob_level_info d[4];
    CHECK(best_price(b, OB_BUY) == -1 && best_price(b, OB_SELL) == -1);
    CHECK(ob_depth(b, OB_BUY, d, 4) == 0);
    CHECK(ob_order_count(b) == 0);
    ob_book_free(b);
}

static void test_resting_orders_aggregate_into_depth_best_first(void) {
    ob_book *b = ob_book_new(0);
    CHECK(limit(b, 1, 1, OB_BUY, 100, 5) == OB_OK);
    CHECK(NEV == 1 && EV[0].kind == OB_EV_ACCEPTED && EV[0].taker_remaining == 5);
    limit(b, 2, 1, OB_BUY, 101, 3);
    limit(b, 3, 2, OB_BUY, 100, 7);
    limit(b, 4, 2, OB_SELL, 105, 1);
    limit(b, 5, 2, OB_SELL, 103, 2);
    ob_level_info d[4];
    CHECK(ob_depth(b, OB_BUY, d, 4) == 2);
    CHECK(d[0].price == 101 && d[0].qty == 3 && d[0].count == 1);
    CHECK(d[1].price == 100 && d[1].qty == 12 && d[1].count == 2);
    CHECK(ob_depth(b, OB_SELL, d, 1) == 1 && d[0].price == 103);
    CHECK(best_price(b, OB_SELL) == 103 && best_qty(b, OB_SELL) == 2);
    CHECK(ob_order_count(b) == 5 && ob_level_count(b, OB_BUY) == 2);
    ob_book_free(b);
}

static void test_taker_fills_at_maker_price_in_time_priority(void) {
    ob_book *b = ob_book_new(0);
    limit(b, 1, 1, OB_SELL, 100, 2);
    limit(b, 2, 2, OB_SELL, 100, 2);
    limit(b, 3, 3, OB_SELL, 101, 5);
    CHECK(limit(b, 10, 9, OB_BUY, 101, 5) == OB_OK);
    CHECK(NEV == 4);
    CHECK(EV[1].kind == OB_EV_TRADE && EV[1].maker_id == 1 && EV[1].price == 100 && EV[1].qty == 2);
    CHECK(EV[1].maker_remaining == 0 && EV[1].taker_remaining == 3 && EV[1].maker_owner == 1);
    CHECK(EV[2].maker_id == 2 && EV[2].qty == 2 && EV[2].taker_remaining == 1);
    CHECK(EV[3].maker_id == 3 && EV[3].price == 101 && EV[3].qty == 1 && EV[3].maker_remaining == 4);
    CHECK(EV[3].taker_remaining == 0 && EV[3].taker_owner == 9 && EV[3].side == OB_BUY);
    CHECK(remaining(b, 3) == 4 && remaining(b, 10) == -1 && best_price(b, OB_BUY) == -1);
    ob_book_free(b);
}

static void test_gtc_remainder_rests_after_crossing_levels(void) {
    ob_book *b = ob_book_new(0);
    limit(b, 1, 1, OB_SELL, 100, 1);
    limit(b, 2, 1, OB_SELL, 102, 1);
    limit(b, 3, 1, OB_SELL, 104, 1);
    limit(b, 4, 2, OB_BUY, 103, 10);
    CHECK(count_kind(OB_EV_TRADE) == 2);
    CHECK(best_price(b, OB_BUY) == 103 && best_qty(b, OB_BUY) == 8 && best_price(b, OB_SELL) == 104);
    ob_book_free(b);
}

static void test_ioc_remainder_expires(void) {
    ob_book *b = ob_book_new(0);
    limit(b, 1, 1, OB_SELL, 100, 1);
    CHECK(limit_x(b, 2, 2, OB_BUY, 100, 3, OB_IOC, 0, 0) == OB_OK);
    CHECK(NEV == 3 && EV[2].kind == OB_EV_EXPIRED && EV[2].reason == OB_REASON_IOC_REMAINDER);
    CHECK(EV[2].qty == 2 && ob_order_count(b) == 0);
    ob_book_free(b);
}

static void test_fok_that_could_fill_only_partially_changes_nothing(void) {
    ob_book *b = ob_book_new(0);
    limit(b, 1, 1, OB_SELL, 100, 2);
    limit(b, 2, 1, OB_SELL, 101, 2);
    limit(b, 3, 1, OB_SELL, 103, 9);
    size_t len;
    uint8_t *before = snap(b, &len);
    CHECK(limit_x(b, 4, 2, OB_BUY, 102, 5, OB_FOK, 0, 0) == OB_OK);
    CHECK(NEV == 2 && EV[1].kind == OB_EV_EXPIRED && EV[1].reason == OB_REASON_FOK_UNFILLABLE);
    CHECK(ob_order_count(b) == 3 && remaining(b, 1) == 2);
    CHECK(limit_x(b, 5, 2, OB_BUY, 102, 4, OB_FOK, 0, 0) == OB_OK);
    CHECK(count_kind(OB_EV_TRADE) == 2 && ob_order_count(b) == 1);
    free(before);
    ob_book_free(b);
}

static void test_fok_counts_own_orders_as_unfillable_under_stp(void) {
    ob_book *b = ob_book_new(0);
    limit(b, 1, 7, OB_SELL, 100, 5);
    limit(b, 2, 1, OB_SELL, 100, 5);
    CHECK(limit_x(b, 3, 7, OB_BUY, 100, 5, OB_FOK, 0, OB_STP_EXPIRE_TAKER) == OB_OK);
    CHECK(EV[NEV - 1].reason == OB_REASON_FOK_UNFILLABLE && ob_order_count(b) == 2);
    CHECK(limit_x(b, 4, 7, OB_BUY, 100, 5, OB_FOK, 0, OB_STP_EXPIRE_MAKER) == OB_OK);
    CHECK(count_kind(OB_EV_TRADE) == 1 && EV[1].reason == OB_REASON_STP_EXPIRE_MAKER);
    CHECK(ob_order_count(b) == 0);
    ob_book_free(b);
}

static void test_post_only_that_would_cross_is_rejected(void) {
    ob_book *b = ob_book_new(0);
    limit(b, 1, 1, OB_SELL, 100, 2);
    CHECK(limit_x(b, 2, 2, OB_BUY, 100, 1, OB_GTC, OB_FLAG_POST_ONLY, 0) == OB_OK);
    CHECK(NEV == 1 && EV[0].kind == OB_EV_REJECTED && EV[0].reason == OB_REASON_POST_ONLY_WOULD_TAKE);
    CHECK(remaining(b, 1) == 2 && remaining(b, 2) == -1);
    CHECK(limit_x(b, 3, 2, OB_BUY, 99, 1, OB_GTC, OB_FLAG_POST_ONLY, 0) == OB_OK);
    CHECK(remaining(b, 3) == 1);
    CHECK(limit_x(b, 4, 2, OB_BUY, 99, 1, OB_IOC, OB_FLAG_POST_ONLY, 0) == OB_ERR_INVALID_ARGUMENT);
    ob_book_free(b);
}

static void test_market_order_on_empty_book_expires_with_no_liquidity(void) {
    ob_book *b = ob_book_new(0);
    CHECK(run(b, cmd(OB_CMD_MARKET, 1, 1, OB_BUY, 0, 5)) == OB_OK);
    CHECK(NEV == 2 && EV[0].kind == OB_EV_ACCEPTED && EV[1].kind == OB_EV_EXPIRED);
    CHECK(EV[1].reason == OB_REASON_NO_LIQUIDITY && EV[1].qty == 5);
    CHECK(run(b, cmd(OB_CMD_MARKET_QUOTE, 2, 1, OB_BUY, 0, 500)) == OB_OK);
    CHECK(EV[1].reason == OB_REASON_NO_LIQUIDITY && EV[1].qty == 500);
    ob_book_free(b);
}

static void test_market_sell_sweeps_bids_then_expires_rest(void) {
    ob_book *b = ob_book_new(0);
    limit(b, 1, 1, OB_BUY, 100, 2);
    limit(b, 2, 1, OB_BUY, 90, 2);
    CHECK(run(b, cmd(OB_CMD_MARKET, 3, 2, OB_SELL, 0, 5)) == OB_OK);
    CHECK(NEV == 4 && EV[1].price == 100 && EV[2].price == 90 && EV[3].qty == 1);
    CHECK(EV[3].reason == OB_REASON_NO_LIQUIDITY && ob_order_count(b) == 0);
    ob_book_free(b);
}

static void test_market_buy_with_budget_below_one_lot_buys_nothing(void) {
    ob_book *b = ob_book_new(0);
    limit(b, 1, 1, OB_SELL, 100, 5);
    CHECK(run(b, cmd(OB_CMD_MARKET_QUOTE, 2, 2, OB_BUY, 0, 99)) == OB_OK);
    CHECK(NEV == 2 && EV[1].kind == OB_EV_EXPIRED && EV[1].reason == OB_REASON_BUDGET_EXHAUSTED);
    CHECK(EV[1].qty == 99 && remaining(b, 1) == 5);
    ob_book_free(b);
}

static void test_market_buy_by_budget_spends_at_most_the_budget(void) {
    ob_book *b = ob_book_new(0);
    limit(b, 1, 1, OB_SELL, 100, 2);
    limit(b, 2, 1, OB_SELL, 150, 10);
    CHECK(run(b, cmd(OB_CMD_MARKET_QUOTE, 3, 2, OB_BUY, 0, 520)) == OB_OK);
    /* 2 @ 100 = 200, then 320 / 150 = 2 lots = 300, 20 left */
    CHECK(NEV == 4 && EV[1].qty == 2 && EV[1].taker_remaining == 320);
    CHECK(EV[2].qty == 2 && EV[2].price == 150 && EV[2].taker_remaining == 20);
    CHECK(EV[3].kind == OB_EV_EXPIRED && EV[3].reason == OB_REASON_BUDGET_EXHAUSTED && EV[3].qty == 20);
    CHECK(remaining(b, 2) == 8);
    CHECK(run(b, cmd(OB_CMD_MARKET_QUOTE, 4, 2, OB_BUY, 0, 300)) == OB_OK);
    CHECK(NEV == 2 && EV[1].taker_remaining == 0); /* exact spend: no EXPIRED */
    ob_book_free(b);
}

static void test_cancel_removes_order_and_empty_level(void) {
    ob_book *b = ob_book_new(0);
    limit(b, 1, 1, OB_BUY, 100, 5);
    limit(b, 2, 1, OB_BUY, 99, 5);
    CHECK(run(b, cmd(OB_CMD_CANCEL, 1, 0, 0, 0, 0)) == OB_OK);
    CHECK(NEV == 1 && EV[0].kind == OB_EV_CANCELLED && EV[0].qty == 5 && EV[0].price == 100);
    CHECK(EV[0].reason == OB_REASON_USER_CANCEL && EV[0].taker_owner == 1);
    CHECK(best_price(b, OB_BUY) == 99 && ob_level_count(b, OB_BUY) == 1);
    CHECK(run(b, cmd(OB_CMD_CANCEL, 1, 0, 0, 0, 0)) == OB_ERR_UNKNOWN_ID && NEV == 0);
    ob_book_free(b);
}

static void test_reduce_keeps_time_priority(void) {
    ob_book *b = ob_book_new(0);
    limit(b, 1, 1, OB_SELL, 100, 5);
    limit(b, 2, 1, OB_SELL, 100, 5);
    CHECK(run(b, cmd(OB_CMD_REDUCE, 1, 0, 0, 0, 2)) == OB_OK);
    CHECK(EV[0].kind == OB_EV_REDUCED && EV[0].qty == 3 && EV[0].taker_remaining == 2);
    CHECK(best_qty(b, OB_SELL) == 7);
    limit(b, 3, 2, OB_BUY, 100, 1);
    CHECK(EV[1].maker_id == 1);
    CHECK(run(b, cmd(OB_CMD_REDUCE, 1, 0, 0, 0, 1)) == OB_ERR_INVALID_QUANTITY);
    CHECK(run(b, cmd(OB_CMD_REDUCE, 1, 0, 0, 0, 0)) == OB_ERR_INVALID_QUANTITY);
    CHECK(run(b, cmd(OB_CMD_REDUCE, 9, 0, 0, 0, 1)) == OB_ERR_UNKNOWN_ID);
    ob_book_free(b);
}

static void test_replace_loses_time_priority_and_may_trade(void) {
    ob_book *b = ob_book_new(0);
    limit(b, 1, 1, OB_SELL, 100, 5);
    limit(b, 2, 1, OB_SELL, 100, 5);
    CHECK(run(b, cmd(OB_CMD_REPLACE, 1, 0, 0, 100, 6)) == OB_OK);
    CHECK(NEV == 2 && EV[0].kind == OB_EV_CANCELLED && EV[0].reason == OB_REASON_REPLACED);
    CHECK(EV[1].kind == OB_EV_ACCEPTED && EV[1].qty == 6 && EV[1].side == OB_SELL);
    limit(b, 3, 2, OB_BUY, 100, 1);
    CHECK(EV[1].maker_id == 2);
    limit(b, 4, 2, OB_BUY, 90, 1);
    CHECK(run(b, cmd(OB_CMD_REPLACE, 1, 0, 0, 90, 6)) == OB_OK); /* crosses now */
    CHECK(count_kind(OB_EV_TRADE) == 1 && remaining(b, 1) == 5);
    ob_book_free(b);
}

static void test_replace_when_the_pool_must_grow(void) {
    ob_book *b = ob_book_new(1); /* exactly one node: the replace has to grow the pool */
    limit(b, 1, 3, OB_SELL, 100, 5);
    CHECK(run(b, cmd(OB_CMD_REPLACE, 1, 0, 0, 101, 4)) == OB_OK);
    CHECK(NEV == 2 && EV[0].order_id == 1 && EV[0].taker_owner == 3 && EV[0].qty == 5);
    CHECK(remaining(b, 1) == 4 && best_price(b, OB_SELL) == 101);
    ob_book_free(b);
}

static void stp_setup(ob_book *b) {
    limit(b, 1, 7, OB_SELL, 100, 3); /* own */
    limit(b, 2, 1, OB_SELL, 100, 3); /* other */
}

static void test_stp_none_allows_self_trade(void) {
    ob_book *b = ob_book_new(0);
    stp_setup(b);
    limit_x(b, 3, 7, OB_BUY, 100, 2, OB_GTC, 0, OB_STP_NONE);
    CHECK(NEV == 2 && EV[1].kind == OB_EV_TRADE && EV[1].maker_owner == 7 && EV[1].taker_owner == 7);
    ob_book_free(b);
}

static void test_stp_expire_taker_keeps_maker(void) {
    ob_book *b = ob_book_new(0);
    stp_setup(b);
    limit_x(b, 3, 7, OB_BUY, 100, 2, OB_GTC, 0, OB_STP_EXPIRE_TAKER);
    CHECK(NEV == 2 && EV[1].kind == OB_EV_EXPIRED && EV[1].order_id == 3);
    CHECK(EV[1].reason == OB_REASON_STP_EXPIRE_TAKER && EV[1].qty == 2);
    CHECK(remaining(b, 1) == 3 && remaining(b, 3) == -1);
    ob_book_free(b);
}

static void test_stp_expire_maker_removes_own_order_and_continues(void) {
    ob_book *b = ob_book_new(0);
    stp_setup(b);
    limit_x(b, 3, 7, OB_BUY, 100, 2, OB_GTC, 0, OB_STP_EXPIRE_MAKER);
    CHECK(NEV == 3 && EV[1].kind == OB_EV_EXPIRED && EV[1].order_id == 1);
    CHECK(EV[1].reason == OB_REASON_STP_EXPIRE_MAKER && EV[1].qty == 3 && EV[1].taker_owner == 7);
    CHECK(EV[2].kind == OB_EV_TRADE && EV[2].maker_id == 2 && EV[2].qty == 2);
    CHECK(remaining(b, 1) == -1 && remaining(b, 2) == 1);
    ob_book_free(b);
}

static void test_stp_expire_both_removes_both(void) {
    ob_book *b = ob_book_new(0);
    stp_setup(b);
    limit_x(b, 3, 7, OB_BUY, 100, 2, OB_GTC, 0, OB_STP_EXPIRE_BOTH);
    CHECK(NEV == 3 && EV[1].order_id == 1 && EV[2].order_id == 3);
    CHECK(EV[1].reason == OB_REASON_STP_EXPIRE_BOTH && EV[2].reason == OB_REASON_STP_EXPIRE_BOTH);
    CHECK(remaining(b, 1) == -1 && remaining(b, 2) == 3 && remaining(b, 3) == -1);
    ob_book_free(b);
}

static void test_stp_decrement_reduces_both_without_trading(void) {
    ob_book *b = ob_book_new(0);
    stp_setup(b);
    limit_x(b, 3, 7, OB_BUY, 100, 2, OB_GTC, 0, OB_STP_DECREMENT);
    CHECK(NEV == 3 && EV[1].kind == OB_EV_REDUCED && EV[1].order_id == 1 && EV[1].qty == 2);
    CHECK(EV[1].taker_remaining == 1 && EV[2].kind == OB_EV_EXPIRED && EV[2].order_id == 3);
    CHECK(remaining(b, 1) == 1 && count_kind(OB_EV_TRADE) == 0);
    limit_x(b, 4, 7, OB_BUY, 100, 3, OB_GTC, 0, OB_STP_DECREMENT);
    /* maker 1 (1 left) expires, taker reduced to 2, then trades 2 with order 2 */
    CHECK(NEV == 4 && EV[1].kind == OB_EV_EXPIRED && EV[2].kind == OB_EV_REDUCED);
    CHECK(EV[3].kind == OB_EV_TRADE && EV[3].qty == 2 && remaining(b, 2) == 1);
    ob_book_free(b);
}

static void test_hostile_input_is_refused_and_book_unchanged(void) {
    ob_book *b = ob_book_new(0);
    limit(b, 1, 1, OB_BUY, 100, 5);
    limit(b, 2, 1, OB_SELL, 110, 5);
    size_t len;
    uint8_t *before = snap(b, &len);
    CHECK(limit(b, 3, 1, OB_BUY, 100, 0) == OB_ERR_INVALID_QUANTITY && NEV == 0);
    CHECK(limit(b, 3, 1, OB_BUY, 100, -4) == OB_ERR_INVALID_QUANTITY);
    CHECK(limit(b, 3, 1, OB_BUY, 0, 4) == OB_ERR_INVALID_PRICE);
    CHECK(limit(b, 3, 1, OB_BUY, -1, 4) == OB_ERR_INVALID_PRICE);
    CHECK(limit(b, 1, 1, OB_BUY, 100, 4) == OB_ERR_DUPLICATE_ID);
    CHECK(limit(b, 3, 1, OB_BUY, INT64_MAX / 2, 3) == OB_ERR_OVERFLOW);
    CHECK(limit(b, 3, 1, 2, 100, 3) == OB_ERR_INVALID_ARGUMENT);
    CHECK(run(b, cmd(OB_CMD_MARKET, 1, 1, OB_SELL, 0, 3)) == OB_ERR_DUPLICATE_ID);
    CHECK(run(b, cmd(OB_CMD_MARKET_QUOTE, 3, 1, OB_BUY, 0, 0)) == OB_ERR_INVALID_QUANTITY);
    CHECK(run(b, cmd(42, 3, 1, OB_BUY, 1, 1)) == OB_ERR_INVALID_ARGUMENT);
    CHECK(run(b, cmd(OB_CMD_REPLACE, 1, 1, 0, 100, 0)) == OB_ERR_INVALID_QUANTITY);
    CHECK(run(b, cmd(OB_CMD_REPLACE, 8, 1, 0, 100, 1)) == OB_ERR_UNKNOWN_ID);
    ob_command c = cmd(OB_CMD_LIMIT, 3, 1, OB_BUY, 100, 1);
    CHECK(ob_execute(b, &c, EV, OB_MIN_EVENTS - 1, &NEV) == OB_ERR_BUFFER_TOO_SMALL);
    CHECK(same_book(b, before, len));
    /* level total overflow: two orders of huge qty at price 1 */
    CHECK(limit(b, 10, 1, OB_BUY, 1, INT64_MAX - 1) == OB_OK);
    CHECK(limit(b, 11, 1, OB_BUY, 1, 2) == OB_ERR_OVERFLOW);
    CHECK(strcmp(ob_strerror(OB_ERR_OVERFLOW), "unknown result code") != 0);
    free(before);
    ob_book_free(b);
}

static void test_bounded_buffer_resumes_across_thousands_of_levels(void) {
    ob_book *b = ob_book_new(0);
    for (int i = 0; i < 5000; i++) limit(b, i + 1, 1, OB_SELL, 1000 + i, 1);
    ob_command c = cmd(OB_CMD_LIMIT, 99999, 2, OB_BUY, 1000000, 6000);
    c.tif = OB_IOC;
    ob_event small[OB_MIN_EVENTS];
    size_t n = 0, total_trades = 0, total_events = 0, calls = 1;
    int64_t expect_price = 1000, expired = 0;
    ob_result r = ob_execute(b, &c, small, OB_MIN_EVENTS, &n);
    for (;;) {
        for (size_t i = 0; i < n; i++) {
            if (small[i].kind == OB_EV_TRADE) {
                CHECK(small[i].price == expect_price);
                expect_price++;
                total_trades++;
            }
            if (small[i].kind == OB_EV_EXPIRED) expired = small[i].qty;
        }
        total_events += n;
        if (r != OB_MORE) break;
        CHECK(ob_pending(b));
        CHECK(limit(b, 424242, 1, OB_BUY, 1, 1) == OB_ERR_BUSY);
        r = ob_resume(b, small, OB_MIN_EVENTS, &n);
        calls++;
    }
    CHECK(r == OB_OK && !ob_pending(b));
    CHECK(total_trades == 5000 && expired == 1000 && total_events == 5002 && calls > 1000);
    CHECK(ob_order_count(b) == 0);
    ob_book_free(b);
}

static void test_batch_rejects_bad_commands_without_aborting(void) {
    ob_book *b = ob_book_new(0);
    ob_command cs[4] = {
        cmd(OB_CMD_LIMIT, 1, 1, OB_SELL, 100, 5),
        cmd(OB_CMD_LIMIT, 1, 1, OB_SELL, 100, 5),   /* duplicate */
        cmd(OB_CMD_CANCEL, 77, 0, 0, 0, 0),         /* unknown */
        cmd(OB_CMD_LIMIT, 2, 2, OB_BUY, 100, 2),
    };
    size_t n, consumed;
    CHECK(ob_execute_batch(b, cs, 4, EV, CAP, &n, &consumed) == OB_OK);
    CHECK(consumed == 4 && n == 5);
    CHECK(EV[1].kind == OB_EV_REJECTED && EV[1].reason == OB_REASON_REJECT_BASE + OB_ERR_DUPLICATE_ID);
    CHECK(EV[2].kind == OB_EV_REJECTED && EV[2].reason == OB_REASON_REJECT_BASE + OB_ERR_UNKNOWN_ID);
    CHECK(EV[4].kind == OB_EV_TRADE && remaining(b, 1) == 3);
    CHECK(ob_sequence(b) == 2);
    ob_book_free(b);
}

static void test_batch_with_small_buffer_continues_where_it_stopped(void) {
    ob_book *b = ob_book_new(0);
    ob_command cs[100];
    for (int i = 0; i < 100; i++) cs[i] = cmd(OB_CMD_LIMIT, i + 1, 1, OB_SELL, 100 + i, 1);
    ob_event small[6];
    size_t done = 0, n, consumed, events = 0;
    while (done < 100) {
        ob_result r = ob_execute_batch(b, cs + done, 100 - done, small, 6, &n, &consumed);
        CHECK(r == OB_OK || r == OB_MORE);
        events += n;
        done += consumed;
    }
    CHECK(events == 100 && ob_order_count(b) == 100);
    ob_book_free(b);
}

static void test_snapshot_restore_preserves_priority_and_bytes(void) {
    ob_book *b = ob_book_new(0);
    for (int i = 0; i < 300; i++) {
        limit(b, i + 1, i % 7, i % 2 ? OB_SELL : OB_BUY, i % 2 ? 200 + i % 13 : 190 - i % 11, 1 + i % 5);
    }
    run(b, cmd(OB_CMD_CANCEL, 5, 0, 0, 0, 0));
    size_t len;
    uint8_t *s = snap(b, &len);
    ob_book *r = NULL;
    CHECK(ob_book_restore(s, len, &r) == OB_OK && r);
    CHECK(same_book(r, s, len));
    CHECK(ob_order_count(r) == ob_order_count(b) && ob_sequence(r) == ob_sequence(b));
    /* the same taker gives the same events on both */
    ob_event e2[CAP];
    size_t n2;
    ob_command c = cmd(OB_CMD_MARKET, 5000, 3, OB_BUY, 0, 40);
    ob_execute(b, &c, EV, CAP, &NEV);
    ob_execute(r, &c, e2, CAP, &n2);
    CHECK(NEV == n2 && memcmp(EV, e2, NEV * sizeof(ob_event)) == 0);
    /* corruption is detected */
    s[len / 2] ^= 1;
    ob_book *bad = NULL;
    CHECK(ob_book_restore(s, len, &bad) == OB_ERR_BAD_SNAPSHOT && bad == NULL);
    CHECK(ob_book_restore(s, len - 1, &bad) == OB_ERR_BAD_SNAPSHOT);
    CHECK(ob_book_restore(s, 10, &bad) == OB_ERR_BAD_SNAPSHOT);
    free(s);
    ob_book_free(r);
    ob_book_free(b);
}

static void test_millions_of_resting_orders(void) {
    const int N = 2000000;
    ob_book *b = ob_book_new(0);
    int ok = 1;
    for (int i = 0; i < N && ok; i++)
        ok = limit(b, (int64_t)i * 7919 + 1, i, i & 1 ? OB_SELL : OB_BUY,
                   i & 1 ? 100000 + i % 1000 : 99999 - i % 1000, 1 + i % 3) == OB_OK;
    CHECK(ok && ob_order_count(b) == (size_t)N);
    CHECK(remaining(b, (int64_t)12345 * 7919 + 1) == 1 + 12345 % 3);
    for (int i = 0; i < N && ok; i += 2) ok = run(b, cmd(OB_CMD_CANCEL, (int64_t)i * 7919 + 1, 0, 0, 0, 0)) == OB_OK;
    CHECK(ok && ob_order_count(b) == (size_t)N / 2 && best_price(b, OB_BUY) == -1);
    ob_book_free(b);
}

static void test_id_index_survives_random_insert_and_delete(void) {
    ob_book *b = ob_book_new(0);
    enum { M = 4096 };
    static char live[M];
    memset(live, 0, sizeof live);
    unsigned x = 12345;
    int ok = 1;
    for (int step = 0; step < 200000 && ok; step++) {
        x = x * 1103515245u + 12345u;
        int id = (int)((x >> 8) % M);
        if (live[id]) {
            ok = run(b, cmd(OB_CMD_CANCEL, (int64_t)id << 20, 0, 0, 0, 0)) == OB_OK;
            live[id] = 0;
        } else {
            ok = limit(b, (int64_t)id << 20, 1, OB_BUY, 1 + id % 50, 1) == OB_OK;
            live[id] = 1;
        }
    }
    size_t n = 0;
    for (int i = 0; i < M; i++) {
        n += live[i];
        if ((remaining(b, (int64_t)i << 20) == 1) != live[i]) ok = 0;
    }
    CHECK(ok && n == ob_order_count(b));
    ob_book_free(b);
}

/* ---- volatility band ---------------------------------------------------- */

static ob_band band_at(int64_t last, int mode) {
    ob_band bd;
    memset(&bd, 0, sizeof bd);
    bd.last = last;
    bd.static_num = 5, bd.static_den = 1;   /* ±5 %  */
    bd.dynamic_num = 10, bd.dynamic_den = 1; /* ±10 % */
    bd.mode = (uint8_t)mode;
    return bd;
}

static void test_band_limits_are_exact_and_rounded_inwards(void) {
    int64_t lo = 0, hi = 0;
    ob_band bd = band_at(10000, OB_BAND_HALT);
    CHECK(ob_band_limits(&bd, &lo, &hi) == 1 && lo == 9500 && hi == 10500);
    /* mean 301/3: static [ceil(95.316..), floor(105.35)] = [96, 105]; dynamic [90, 111] */
    bd = band_at(101, OB_BAND_HALT);
    bd.ref_sum = 301, bd.ref_count = 3, bd.high = 101, bd.low = 100, bd.dyn_count = 3;
    CHECK(ob_band_limits(&bd, &lo, &hi) == 1 && lo == 96 && hi == 105);
    /* 2.5 % = 5/2: [97.5 -> 98, 102.5 -> 102] */
    bd = band_at(100, OB_BAND_HALT);
    bd.static_num = 5, bd.static_den = 2;
    CHECK(ob_band_limits(&bd, &lo, &hi) == 1 && lo == 98 && hi == 102);
    bd.last = 0;
    CHECK(ob_band_limits(&bd, &lo, &hi) == 0); /* no trade yet: no band */
}

static void test_band_refuses_an_order_that_would_print_outside_and_changes_nothing(void) {
    ob_book *b = ob_book_new(0);
    CHECK(limit(b, 1, 1, OB_SELL, 104, 1) == OB_OK);
    CHECK(limit(b, 2, 1, OB_SELL, 110, 1) == OB_OK);
    ob_band bd = band_at(100, OB_BAND_HALT);
    CHECK(ob_band_set(b, &bd) == OB_OK);
    size_t len0;
    uint8_t *before = snap(b, &len0);
    CHECK(limit(b, 3, 2, OB_BUY, 110, 2) == OB_OK); /* would print 104 then 110 */
    CHECK(NEV == 1 && EV[0].kind == OB_EV_REJECTED && EV[0].reason == OB_REASON_OUTSIDE_BAND);
    CHECK(EV[0].order_id == 3 && EV[0].price == 110 && EV[0].qty == 2);
    size_t len1;
    uint8_t *after = snap(b, &len1);
    CHECK(len0 == len1 && memcmp(before, after, len0) == 0); /* nothing printed, nothing rests */
    free(before);
    free(after);
    ob_band got;
    CHECK(ob_band_get(b, &got) == 1 && got.last == 100 && got.dyn_count == 0);
    ob_book_free(b);
}

static void test_prints_inside_the_band_move_it(void) {
    ob_book *b = ob_book_new(0);
    CHECK(limit(b, 1, 1, OB_SELL, 104, 1) == OB_OK);
    CHECK(limit(b, 2, 1, OB_SELL, 105, 1) == OB_OK);
    ob_band bd = band_at(100, OB_BAND_HALT);
    CHECK(ob_band_set(b, &bd) == OB_OK);
    CHECK(limit(b, 3, 2, OB_BUY, 105, 2) == OB_OK);
    CHECK(count_kind(OB_EV_TRADE) == 2);
    ob_band got;
    CHECK(ob_band_get(b, &got) == 1);
    CHECK(got.last == 105 && got.ref_sum == 209 && got.ref_count == 2 && got.high == 105 && got.low == 104 && got.dyn_count == 2);
    int64_t lo, hi; /* mean 104.5: static [99.275 -> 100, 109.725 -> 109]; dynamic [93.6 -> 94, 115.5 -> 115] */
    CHECK(ob_band_limits(&got, &lo, &hi) == 1 && lo == 100 && hi == 109);
    CHECK(ob_band_set(b, NULL) == OB_OK && ob_band_get(b, &got) == 0);
    ob_book_free(b);
}

static void test_band_halt_mode_stops_the_batch_and_skip_mode_goes_on(void) {
    for (int mode = OB_BAND_HALT; mode <= OB_BAND_SKIP; mode++) {
        ob_book *b = ob_book_new(0);
        CHECK(limit(b, 1, 1, OB_SELL, 120, 1) == OB_OK);
        ob_band bd = band_at(100, mode);
        CHECK(ob_band_set(b, &bd) == OB_OK);
        ob_command cmds[3] = {cmd(OB_CMD_LIMIT, 2, 2, OB_BUY, 99, 1), cmd(OB_CMD_MARKET, 3, 2, OB_BUY, 0, 1),
                              cmd(OB_CMD_LIMIT, 4, 2, OB_BUY, 98, 1)};
        size_t consumed = 0;
        CHECK(ob_execute_batch(b, cmds, 3, EV, CAP, &NEV, &consumed) == OB_OK);
        if (mode == OB_BAND_HALT) {
            CHECK(consumed == 2 && NEV == 2 && EV[1].kind == OB_EV_REJECTED && EV[1].reason == OB_REASON_OUTSIDE_BAND);
            CHECK(remaining(b, 4) == -1);
        } else {
            CHECK(consumed == 3 && NEV == 3 && EV[1].reason == OB_REASON_OUTSIDE_BAND && remaining(b, 4) == 1);
        }
        ob_book_free(b);
    }
}

static void test_band_check_follows_stp_fok_and_the_quote_budget(void) {
    ob_book *b = ob_book_new(0);
    CHECK(limit(b, 1, 2, OB_SELL, 104, 1) == OB_OK);
    CHECK(limit(b, 2, 1, OB_SELL, 110, 5) == OB_OK);
    ob_band bd = band_at(100, OB_BAND_SKIP);
    CHECK(ob_band_set(b, &bd) == OB_OK);
    /* owner 1 meets its own order at 110 under EXPIRE_TAKER: the match ends there, no print outside */
    CHECK(limit_x(b, 3, 1, OB_BUY, 120, 3, OB_GTC, 0, OB_STP_EXPIRE_TAKER) == OB_OK);
    CHECK(EV[0].kind == OB_EV_ACCEPTED && count_kind(OB_EV_TRADE) == 1 && EV[1].price == 104);
    CHECK(limit(b, 4, 2, OB_SELL, 104, 1) == OB_OK);
    /* a FOK that cannot fill expires unprinted: not refused */
    CHECK(limit_x(b, 5, 3, OB_BUY, 120, 50, OB_FOK, 0, OB_STP_NONE) == OB_OK);
    CHECK(NEV == 2 && EV[1].kind == OB_EV_EXPIRED && EV[1].reason == OB_REASON_FOK_UNFILLABLE);
    /* a budget that only reaches 104 is inside; one that reaches 110 is refused */
    ob_command q = cmd(OB_CMD_MARKET_QUOTE, 6, 3, OB_BUY, 0, 104 + 109);
    CHECK(run(b, q) == OB_OK && EV[0].kind == OB_EV_ACCEPTED && count_kind(OB_EV_TRADE) == 1);
    CHECK(limit(b, 7, 2, OB_SELL, 104, 1) == OB_OK);
    q = cmd(OB_CMD_MARKET_QUOTE, 8, 3, OB_BUY, 0, 104 + 110);
    CHECK(run(b, q) == OB_OK && NEV == 1 && EV[0].reason == OB_REASON_OUTSIDE_BAND && EV[0].price == 110);
    /* a replace that would print outside keeps the old order where it was */
    CHECK(limit(b, 9, 3, OB_BUY, 90, 1) == OB_OK);
    ob_command r = cmd(OB_CMD_REPLACE, 9, 0, 0, 111, 6);
    CHECK(run(b, r) == OB_OK && NEV == 1 && EV[0].reason == OB_REASON_OUTSIDE_BAND && remaining(b, 9) == 1);
    ob_book_free(b);
}

static void test_band_set_refuses_an_inconsistent_state(void) {
    ob_book *b = ob_book_new(0);
    ob_band bd = band_at(100, OB_BAND_HALT);
    bd.static_den = 0;
    CHECK(ob_band_set(b, &bd) == OB_ERR_INVALID_ARGUMENT);
    bd = band_at(0, OB_BAND_HALT);
    bd.ref_count = 1, bd.ref_sum = 100;
    CHECK(ob_band_set(b, &bd) == OB_ERR_INVALID_ARGUMENT); /* trades without a last price */
    bd = band_at(100, 7);
    CHECK(ob_band_set(b, &bd) == OB_ERR_INVALID_ARGUMENT);
    bd = band_at(100, OB_BAND_HALT);
    bd.dyn_count = 1, bd.low = 101, bd.high = 100;
    CHECK(ob_band_set(b, &bd) == OB_ERR_INVALID_ARGUMENT);
    CHECK(ob_band_set(NULL, NULL) == OB_ERR_INVALID_ARGUMENT);
    ob_book_free(b);
}

int main(void) {
    RUN(test_empty_book_has_no_best_and_no_depth);
    RUN(test_resting_orders_aggregate_into_depth_best_first);
    RUN(test_taker_fills_at_maker_price_in_time_priority);
    RUN(test_gtc_remainder_rests_after_crossing_levels);
    RUN(test_ioc_remainder_expires);
    RUN(test_fok_that_could_fill_only_partially_changes_nothing);
    RUN(test_fok_counts_own_orders_as_unfillable_under_stp);
    RUN(test_post_only_that_would_cross_is_rejected);
    RUN(test_market_order_on_empty_book_expires_with_no_liquidity);
    RUN(test_market_sell_sweeps_bids_then_expires_rest);
    RUN(test_market_buy_with_budget_below_one_lot_buys_nothing);
    RUN(test_market_buy_by_budget_spends_at_most_the_budget);
    RUN(test_cancel_removes_order_and_empty_level);
    RUN(test_reduce_keeps_time_priority);
    RUN(test_replace_loses_time_priority_and_may_trade);
    RUN(test_replace_when_the_pool_must_grow);
    RUN(test_stp_none_allows_self_trade);
    RUN(test_stp_expire_taker_keeps_maker);
    RUN(test_stp_expire_maker_removes_own_order_and_continues);
    RUN(test_stp_expire_both_removes_both);
    RUN(test_stp_decrement_reduces_both_without_trading);
    RUN(test_hostile_input_is_refused_and_book_unchanged);
    RUN(test_bounded_buffer_resumes_across_thousands_of_levels);
    RUN(test_batch_rejects_bad_commands_without_aborting);
    RUN(test_batch_with_small_buffer_continues_where_it_stopped);
    RUN(test_snapshot_restore_preserves_priority_and_bytes);
    RUN(test_millions_of_resting_orders);
    RUN(test_id_index_survives_random_insert_and_delete);
    RUN(test_band_limits_are_exact_and_rounded_inwards);
    RUN(test_band_refuses_an_order_that_would_print_outside_and_changes_nothing);
    RUN(test_prints_inside_the_band_move_it);
    RUN(test_band_halt_mode_stops_the_batch_and_skip_mode_goes_on);
    RUN(test_band_check_follows_stp_fok_and_the_quote_budget);
    RUN(test_band_set_refuses_an_inconsistent_state);
    printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
