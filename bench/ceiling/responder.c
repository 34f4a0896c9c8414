/*
 * The ceiling of the stack: a minimal libfcgi responder that answers every request with the
 * service's 401 (same status line, headers and JSON body), so that wrk through the same nginx
 * server block measures what nginx + FastCGI + libfcgi cost before any application logic.
 *
 *   responder SOCKET_PATH [PROCESSES [THREADS]]    listen on a unix socket (created here)
 *   responder - [PROCESSES [THREADS]]              serve the listening socket on fd 0
 *
 * Defaults: 2 processes x 64 threads (the best rate measured here among 1x64, 2x16, 2x32, 4x16
 * and 2x64). Each thread calls FCGX_Accept_r on the shared listening socket concurrently (no
 * mutex: the kernel hands each connection to one accept()). The thread count is high on purpose: nginx keeps upstream connections alive (fastcgi_keep_conn on) and
 * libfcgi binds a thread to a kept connection until nginx closes it, so fewer threads than
 * nginx's open upstream connections would leave requests waiting in the backlog.
 *
 * The answer can be adjusted without rebuilding (bench/run copies the service's own):
 *   CEILING_CHALLENGE   the WWW-Authenticate value (default: Bearer realm="leadimport")
 *   CEILING_BODY        the JSON body (default: the service's unauthorized body)
 */
#include <errno.h>
#include <fcgiapp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static char *response;
static int response_len;
static int listen_fd;

static void *serve(void *unused) {
    (void)unused;
    FCGX_Request request;
    char sink[4096];
    if (FCGX_InitRequest(&request, listen_fd, 0) != 0) {
        fprintf(stderr, "responder: FCGX_InitRequest failed\n");
        exit(1);
    }
    while (FCGX_Accept_r(&request) >= 0) {
        /* Read the request body to its end, as any real responder would. */
        while (FCGX_GetStr(sink, sizeof sink, request.in) > 0) {
        }
        FCGX_PutStr(response, response_len, request.out);
        FCGX_Finish_r(&request);
    }
    return NULL;
}

static int open_unix(const char *path) {
    struct sockaddr_un addr;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) { perror("responder: socket"); exit(1); }
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    if (strlen(path) >= sizeof addr.sun_path) { fprintf(stderr, "responder: socket path too long\n"); exit(1); }
    strcpy(addr.sun_path, path);
    unlink(path);
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) != 0) { perror("responder: bind"); exit(1); }
    chmod(path, 0666);
    if (listen(fd, 1024) != 0) { perror("responder: listen"); exit(1); }
    return fd;
}

static void run_process(int threads) {
    pthread_t *ids = calloc((size_t)threads, sizeof *ids);
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&ids[i], NULL, serve, NULL) != 0) { perror("responder: pthread_create"); exit(1); }
    }
    for (int i = 0; i < threads; i++) pthread_join(ids[i], NULL);
    exit(0);
}

static volatile sig_atomic_t stopping;
static void on_term(int sig) { (void)sig; stopping = 1; }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: responder SOCKET_PATH|- [PROCESSES [THREADS]]\n");
        return 2;
    }
    int processes = argc > 2 ? atoi(argv[2]) : 2;
    int threads = argc > 3 ? atoi(argv[3]) : 64;
    if (processes < 1 || processes > 64 || threads < 1 || threads > 1024) {
        fprintf(stderr, "responder: bad process or thread count\n");
        return 2;
    }
    const char *challenge = getenv("CEILING_CHALLENGE");
    if (!challenge || !*challenge) challenge = "Bearer realm=\"leadimport\"";
    const char *body = getenv("CEILING_BODY");
    if (!body || !*body) body = "{\"error\":\"unauthorized\",\"message\":\"a valid bearer token is required\"}";
    size_t cap = strlen(challenge) + strlen(body) + 256;
    response = malloc(cap);
    response_len = snprintf(response, cap,
                            "Status: 401 Unauthorized\r\n"
                            "Content-Type: application/json\r\n"
                            "Content-Length: %zu\r\n"
                            "WWW-Authenticate: %s\r\n"
                            "\r\n%s",
                            strlen(body), challenge, body);

    listen_fd = strcmp(argv[1], "-") == 0 ? 0 : open_unix(argv[1]);
    if (FCGX_Init() != 0) { fprintf(stderr, "responder: FCGX_Init failed\n"); return 1; }
    signal(SIGPIPE, SIG_IGN);

    /* A parent that only waits, and PROCESSES children serving the inherited socket. */
    pid_t *children = calloc((size_t)processes, sizeof *children);
    for (int i = 0; i < processes; i++) {
        pid_t pid = fork();
        if (pid < 0) { perror("responder: fork"); return 1; }
        if (pid == 0) {
            signal(SIGTERM, SIG_DFL);
            run_process(threads);
        }
        children[i] = pid;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int alive = processes;
    while (!stopping && alive > 0) {
        int status;
        pid_t pid = wait(&status);
        if (pid > 0) {
            alive--;
            fprintf(stderr, "responder: child %d exited (status %d)\n", (int)pid, status);
        } else if (errno != EINTR) {
            break;
        }
    }
    for (int i = 0; i < processes; i++) kill(children[i], SIGTERM);
    while (wait(NULL) > 0) {
    }
    if (strcmp(argv[1], "-") != 0) unlink(argv[1]);
    return stopping ? 0 : 1;
}
