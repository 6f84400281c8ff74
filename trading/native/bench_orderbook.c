/* bench_orderbook.c -- replays a command stream through the C book and reports
 * throughput and per-command latency as one JSON object on stdout.
 *
 *   bench_orderbook COMMANDS.bin [EXPECTED_ORDERS]
 *
 * COMMANDS.bin is an array of ob_command records (40 bytes each), as written by
 * `python -m trading.native.bench`. Three throughput runs through
 * ob_execute_batch (best one reported), then one latency run calling ob_execute per
 * command with a monotonic clock read around each call. */
#define _POSIX_C_SOURCE 199309L
#include "orderbook.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

#define EVCAP 65536

typedef struct tally { uint64_t events, trades, traded_qty; } tally;

static void count(const ob_event *ev, size_t n, tally *t) {
    t->events += n;
    for (size_t i = 0; i < n; i++)
        if (ev[i].kind == OB_EV_TRADE) { t->trades++; t->traded_qty += (uint64_t)ev[i].qty; }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s COMMANDS.bin [EXPECTED_ORDERS]\n", argv[0]);
        return 2;
    }
    size_t expected = argc > 2 ? (size_t)strtoull(argv[2], NULL, 10) : 0;
    FILE *f = fopen(argv[1], "rb");
    if (!f) { perror(argv[1]); return 2; }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    size_t n = (size_t)len / sizeof(ob_command);
    ob_command *cmds = malloc(n * sizeof(ob_command) + 1);
    ob_event *ev = malloc(EVCAP * sizeof(ob_event));
    uint64_t *lat = malloc(n * sizeof(uint64_t) + 1);
    if (!cmds || !ev || !lat || fread(cmds, sizeof(ob_command), n, f) != n) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 2;
    }
    fclose(f);

    /* throughput: batch API, best of 3 */
    double best = 1e30;
    tally tb = {0, 0, 0};
    for (int run = 0; run < 3; run++) {
        ob_book *b = ob_book_new(expected);
        tally t = {0, 0, 0};
        size_t done = 0, nev, consumed;
        uint64_t t0 = now_ns();
        while (done < n) {
            ob_result r = ob_execute_batch(b, cmds + done, n - done, ev, EVCAP, &nev, &consumed);
            count(ev, nev, &t);
            done += consumed;
            while (ob_pending(b)) {
                ob_resume(b, ev, EVCAP, &nev);
                count(ev, nev, &t);
            }
            if (r != OB_OK && r != OB_MORE) { fprintf(stderr, "batch error %d\n", r); return 1; }
        }
        double s = (double)(now_ns() - t0) / 1e9;
        if (s < best) best = s;
        tb = t;
        ob_book_free(b);
    }

    /* latency: one ob_execute per command, clock read around each */
    uint64_t overhead = UINT64_MAX;
    for (int i = 0; i < 1000; i++) {
        uint64_t a = now_ns(), c = now_ns();
        if (c - a < overhead) overhead = c - a;
    }
    ob_book *b = ob_book_new(expected);
    tally tl = {0, 0, 0};
    uint64_t lat_total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nev;
        uint64_t t0 = now_ns();
        ob_result r = ob_execute(b, &cmds[i], ev, EVCAP, &nev);
        while (r == OB_MORE) {
            count(ev, nev, &tl);
            r = ob_resume(b, ev, EVCAP, &nev);
        }
        uint64_t dt = now_ns() - t0;
        lat[i] = dt;
        lat_total += dt;
        if (r == OB_OK) count(ev, nev, &tl); else tl.events++; /* refused: one REJECTED in batch */
    }
    size_t resting = ob_order_count(b);
    ob_book_free(b);
    qsort(lat, n, sizeof(uint64_t), cmp_u64);
    printf("{\"commands\": %zu, \"batch_seconds\": %.6f, \"batch_ops_per_s\": %.0f, "
           "\"events\": %llu, \"trades\": %llu, \"traded_qty\": %llu, "
           "\"single_ops_per_s\": %.0f, \"p50_ns\": %llu, \"p99_ns\": %llu, \"p999_ns\": %llu, "
           "\"max_ns\": %llu, \"timer_overhead_ns\": %llu, \"resting_at_end\": %zu, "
           "\"latency_run_events\": %llu}\n",
           n, best, n / best, (unsigned long long)tb.events, (unsigned long long)tb.trades,
           (unsigned long long)tb.traded_qty, n / ((double)lat_total / 1e9),
           (unsigned long long)lat[n / 2], (unsigned long long)lat[(size_t)(n * 0.99)],
           (unsigned long long)lat[(size_t)(n * 0.999)], (unsigned long long)lat[n - 1],
           (unsigned long long)overhead, resting, (unsigned long long)tl.events);
    free(cmds);
    free(ev);
    free(lat);
    return 0;
}
