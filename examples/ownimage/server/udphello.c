/* udphello: a UDP program for an image with no shell, no resolver and no ip command.
 *
 *   udphello serve PEER PEERPORT PORT  first instruction: send one datagram to PEER:PEERPORT
 *                                      (PEER: a name from /etc/hosts or an address),
 *                                      once, no retry (it fails if the network is not ready);
 *                                      then echo every datagram that arrives on PORT.
 *   udphello listen PORT               print each datagram with its source and TTL; echo it.
 *   udphello probe PORT                exit 0 if 127.0.0.1:PORT echoes within a second
 *                                      (the healthcheck: CMD form, since there is no shell).
 * Built with gcc -static in a stage FROM hoplab/node and copied into FROM scratch.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* A name from /etc/hosts (hoplab writes every lab name there), or a dotted address. A static
 * binary in an empty image has no NSS modules, so the file is read here; no DNS is ever asked. */
static in_addr_t lookup(const char *name) {
    in_addr_t ip = inet_addr(name);
    char line[512];
    FILE *f = ip == INADDR_NONE ? fopen("/etc/hosts", "r") : NULL;
    while (f && fgets(line, sizeof line, f)) {
        char *save, *first = strtok_r(line, " \t\n", &save), *word;
        while (first && *first != '#' && (word = strtok_r(NULL, " \t\n", &save)))
            if (strcmp(word, name) == 0 && inet_addr(first) != INADDR_NONE) {
                ip = inet_addr(first);
                break;
            }
        if (ip != INADDR_NONE) break;
    }
    if (f) fclose(f);
    return ip;
}

static struct sockaddr_in addr(const char *host, const char *port) {
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((unsigned short)atoi(port));
    a.sin_addr.s_addr = host ? lookup(host) : htonl(INADDR_ANY);
    return a;
}

static int echo(int s, int show) {
    int on = 1;
    setsockopt(s, IPPROTO_IP, IP_RECVTTL, &on, sizeof on);
    for (;;) {
        char buf[2048], ctl[256];
        struct sockaddr_in from;
        struct iovec iov = {buf, sizeof buf - 1};
        struct msghdr m = {&from, sizeof from, &iov, 1, ctl, sizeof ctl, 0};
        ssize_t n = recvmsg(s, &m, 0);
        if (n < 0) { perror("recvmsg"); return 1; }
        int ttl = -1;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c))
            if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TTL) memcpy(&ttl, CMSG_DATA(c), sizeof ttl);
        buf[n] = 0;
        if (show && from.sin_addr.s_addr != htonl(INADDR_LOOPBACK))
            printf("got '%s' from %s:%d ttl=%d\n", buf, inet_ntoa(from.sin_addr), ntohs(from.sin_port), ttl);
        sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&from, m.msg_namelen);
    }
}

static int bound(const char *port) {
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = addr(NULL, port);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); exit(1); }
    return s;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "serve") == 0) {
        /* The first instruction: nothing before it waits for, checks or retries anything. */
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        struct sockaddr_in peer = addr(argv[2], argv[3]);
        if (sendto(s, "hello at the first instruction", 30, 0, (struct sockaddr *)&peer, sizeof peer) < 0) {
            perror("first sendto");
            return 1;
        }
        setvbuf(stdout, NULL, _IONBF, 0);
        printf("sent hello to %s:%s; echoing on %s\n", argv[2], argv[3], argv[4]);
        return echo(bound(argv[4]), 1);
    }
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 3 && strcmp(argv[1], "listen") == 0) {
        int s = bound(argv[2]);
        printf("listening on %s\n", argv[2]);
        return echo(s, 1);
    }
    if (argc == 3 && strcmp(argv[1], "probe") == 0) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        struct timeval tv = {1, 0};
        struct sockaddr_in a = addr("127.0.0.1", argv[2]);
        char buf[16];
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (sendto(s, "probe", 5, 0, (struct sockaddr *)&a, sizeof a) < 0) return 1;
        return recv(s, buf, sizeof buf, 0) == 5 ? 0 : 1;
    }
    fprintf(stderr, "usage: udphello serve PEER PEERPORT PORT | listen PORT | probe PORT\n");
    return 2;
}
