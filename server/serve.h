/* serve: "skd serve": load the configuration, run the loop until shutdown,
 * free everything. Test programs pass extra routes through setup. */
#ifndef SKD_SERVE_H
#define SKD_SERVE_H

#include "server.h"

#define SKD_VERSION "0.1.0"

typedef int (*serve_setup_fn)(server_t *s, void *arg);

/* Returns the process exit code: 0 after a clean shutdown, 1 on errors. */
int serve_run(const char *config_path, serve_setup_fn setup, void *arg);

#endif
