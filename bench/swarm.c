/* The fan-out bench's viewers in C: many bare websocket clients in one epoll loop.

   bench/fanout.py --swarm c builds this with the system's cc and runs it instead of its
   Python viewers, so that the viewers take a fraction of the core they share with the
   server (a Python read costs ~15 us on a slow machine, most of it Python).

   usage: swarm HOST PORT PATH N OUTDIR
   It connects N viewers, prints "ready" once every hello is in, reads "START END" (unix
   seconds) from stdin, and reads on until END + 0.5 s. Then it writes to OUTDIR:
     arrivals.bin  per frame received in the window: int32 seq, int32 viewer, double time
     frames.bin    each distinct frame's payload once: int32 seq, int32 length, bytes
     closes.txt    "viewer code" for each viewer the server closed (1006: no close frame)
     stats.txt     "reads N": socket reads with data in the window
   and prints "done". It answers uvicorn's pings and the app's {"type":"ping"}. */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

typedef struct {
    int fd, upgraded, greeted, closed;
    unsigned char *buf;
    size_t len, cap;
} viewer;

static double now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec / 1e6;
}

static const char PONG[] = "\x81\x8f\0\0\0\0{\"type\":\"pong\"}";  /* masked, zero key */

static double win_start = 1e300, win_end = 1e300;
static long reads = 0, ready = 0;
static FILE *arrivals, *frames;
static unsigned char *seen;  /* which seqs' payloads are written */
static size_t seen_cap = 0;

static void frame_seen(int seq, const unsigned char *p, uint64_t n) {
    if (seq < 0) return;
    if ((size_t)seq >= seen_cap) {
        size_t cap = seen_cap ? seen_cap : 4096;
        while (cap <= (size_t)seq) cap *= 2;
        seen = realloc(seen, cap);
        memset(seen + seen_cap, 0, cap - seen_cap);
        seen_cap = cap;
    }
    if (seen[seq]) return;
    seen[seq] = 1;
    int32_t head[2] = {seq, (int32_t)n};
    fwrite(head, sizeof head, 1, frames);
    fwrite(p, 1, n, frames);
}

static int seq_of(const unsigned char *p, uint64_t n) {  /* `"seq":N` comes last */
    for (uint64_t i = n; i >= 6; i--) {
        if (memcmp(p + i - 6, "\"seq\":", 6) == 0) return atoi((const char *)p + i);
    }
    return -1;
}

/* one message; returns 0 once the connection is over */
static int message(viewer *v, int i, int opcode, const unsigned char *p, uint64_t n, double t) {
    if (opcode == 0x9) {  /* uvicorn's keepalive ping: answer with its payload */
        unsigned char pong[6 + 125] = {0x8A, (unsigned char)(0x80 | n), 0, 0, 0, 0};
        memcpy(pong + 6, p, n);
        if (send(v->fd, pong, 6 + n, MSG_NOSIGNAL) < 0) return 0;
    } else if (opcode == 0x8) {
        v->closed = n >= 2 ? (p[0] << 8 | p[1]) : 1005;
        return 0;
    } else if (!v->greeted) {
        v->greeted = 1;
        ready++;
    } else if (n >= 14 && memcmp(p, "{\"type\":\"ping\"", 14) == 0) {
        if (send(v->fd, PONG, sizeof PONG - 1, MSG_NOSIGNAL) < 0) return 0;
    } else if (n >= 15 && memcmp(p, "{\"type\":\"frame\"", 15) == 0) {
        int seq = seq_of(p, n);
        /* payload needed once per seq, whenever it came, to know its steps' times */
        frame_seen(seq, p, n);
        if (t >= win_start && t <= win_end) {
            struct { int32_t seq, viewer; double t; } row = {seq, i, t};
            fwrite(&row, sizeof row, 1, arrivals);
        }
    }
    return 1;
}

static int readable(viewer *v, int i, double t) {
    if (v->cap - v->len < (1 << 16)) {
        v->cap = v->cap * 2 + (1 << 18);
        v->buf = realloc(v->buf, v->cap);
    }
    ssize_t got = recv(v->fd, v->buf + v->len, v->cap - v->len, 0);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
    if (got <= 0) {
        if (!v->closed) v->closed = 1006;
        return 0;
    }
    if (t >= win_start && t <= win_end) reads++;
    v->len += got;
    size_t at = 0;
    if (!v->upgraded) {
        unsigned char *end = memmem(v->buf, v->len, "\r\n\r\n", 4);
        if (!end) return 1;
        if (memcmp(v->buf, "HTTP/1.1 101", 12) != 0) {
            fprintf(stderr, "no upgrade: %.80s\n", v->buf);
            exit(2);
        }
        at = end - v->buf + 4;
        v->upgraded = 1;
    }
    while (v->len - at >= 2) {
        unsigned char *b = v->buf + at;
        int opcode = b[0] & 0x0F;
        uint64_t n = b[1] & 0x7F;
        size_t head = 2, left = v->len - at;
        if (n == 126) {
            if (left < 4) break;
            n = (uint64_t)b[2] << 8 | b[3];
            head = 4;
        } else if (n == 127) {
            if (left < 10) break;
            n = 0;
            for (int k = 0; k < 8; k++) n = n << 8 | b[2 + k];
            head = 10;
        }
        if (left < head + n) break;
        if (!message(v, i, opcode, b + head, n, t)) return 0;
        at += head + n;
    }
    memmove(v->buf, v->buf + at, v->len - at);
    v->len -= at;
    return 1;
}

static void serve(int ep, viewer *vs, int n, int timeout_ms) {
    struct epoll_event evs[1024];
    int k = epoll_wait(ep, evs, 1024, timeout_ms);
    for (int j = 0; j < k; j++) {
        uint32_t i = evs[j].data.u32;
        if (i == (uint32_t)n) {  /* stdin: the window */
            char line[256] = {0};
            ssize_t got = read(0, line, sizeof line - 1);
            if (got > 0 && sscanf(line, "%lf %lf", &win_start, &win_end) == 2)
                epoll_ctl(ep, EPOLL_CTL_DEL, 0, NULL);
            continue;
        }
        if (!readable(&vs[i], i, now())) {
            epoll_ctl(ep, EPOLL_CTL_DEL, vs[i].fd, NULL);
            close(vs[i].fd);
            vs[i].fd = -1;
        }
    }
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: swarm HOST PORT PATH N OUTDIR\n");
        return 2;
    }
    const char *host = argv[1], *path = argv[3], *out = argv[5];
    int port = atoi(argv[2]), n = atoi(argv[4]);
    char name[4096];
    snprintf(name, sizeof name, "%s/arrivals.bin", out);
    arrivals = fopen(name, "wb");
    snprintf(name, sizeof name, "%s/frames.bin", out);
    frames = fopen(name, "wb");
    viewer *vs = calloc(n, sizeof *vs);
    int ep = epoll_create1(0);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &addr.sin_addr);
    char request[1024];
    int rlen = snprintf(request, sizeof request,
                        "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\n\r\n",
                        path, host, port);
    for (int i = 0; i < n; i++) {
        viewer *v = &vs[i];
        v->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(v->fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
            perror("connect");
            return 2;
        }
        send(v->fd, request, rlen, MSG_NOSIGNAL);
        fcntl(v->fd, F_SETFL, fcntl(v->fd, F_GETFL) | O_NONBLOCK);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, v->fd, &ev);
        if (i % 20 == 19) serve(ep, vs, n, 50);  /* small bursts: the backlog is finite */
    }
    double deadline = now() + 120;
    while (ready < n) {
        if (now() > deadline) {
            fprintf(stderr, "only %ld of %d hellos\n", ready, n);
            return 2;
        }
        serve(ep, vs, n, 100);
    }
    printf("ready\n");
    fflush(stdout);
    struct epoll_event in = {.events = EPOLLIN, .data.u32 = n};
    epoll_ctl(ep, EPOLL_CTL_ADD, 0, &in);
    while (win_end > 1e299 || now() < win_end + 0.5) serve(ep, vs, n, 100);
    fclose(arrivals);
    fclose(frames);
    snprintf(name, sizeof name, "%s/closes.txt", out);
    FILE *f = fopen(name, "w");
    for (int i = 0; i < n; i++)
        if (vs[i].closed) fprintf(f, "%d %d\n", i, vs[i].closed);
    fclose(f);
    snprintf(name, sizeof name, "%s/stats.txt", out);
    f = fopen(name, "w");
    fprintf(f, "reads %ld\n", reads);
    fclose(f);
    printf("done\n");
    fflush(stdout);
    return 0;
}
