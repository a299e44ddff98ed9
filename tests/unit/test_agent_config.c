/* The agent's pure parsers: configuration lines, automount.conf, device
 * names (NVMe vs sdX), mountinfo, identifier shapes; and the config file
 * helpers in a temporary directory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../agent/config.h"
#include "../../agent/devname.h"
#include "../../agent/ids.h"
#include "../../agent/mountinfo.h"

static void one_line(void **state) {
    (void)state;
    char out[32];
    assert_int_equal(skcfg_one_line("http://x/v1\n", 12, out, sizeof out), 0);
    assert_string_equal(out, "http://x/v1");
    assert_int_equal(skcfg_one_line("  vpc-1 \t\r\n", 11, out, sizeof out), 0);
    assert_string_equal(out, "vpc-1");
    assert_int_equal(skcfg_one_line("abc", 3, out, sizeof out), 0); /* no newline at the end */
    assert_int_equal(skcfg_one_line("", 0, out, sizeof out), -1);
    assert_int_equal(skcfg_one_line("\n", 1, out, sizeof out), -1);
    assert_int_equal(skcfg_one_line("a\nb\n", 4, out, sizeof out), -1);
    assert_int_equal(skcfg_one_line("a\n\n", 3, out, sizeof out), -1);
    assert_int_equal(skcfg_one_line("a\0b", 3, out, sizeof out), -1);
    assert_int_equal(skcfg_one_line("0123456789012345678901234567890123", 34, out, sizeof out), -1);
}

static void api_url(void **state) {
    (void)state;
    char out[SKCFG_URL_MAX + 1];
    assert_int_equal(skcfg_api_url("http://127.0.0.1:8080/v1", out, sizeof out), 0);
    assert_string_equal(out, "http://127.0.0.1:8080/v1");
    assert_int_equal(skcfg_api_url("https://keys.example/v1//", out, sizeof out), 0);
    assert_string_equal(out, "https://keys.example/v1");
    assert_int_equal(skcfg_api_url("http://169.254.169.254", out, sizeof out), 0);
    assert_int_equal(skcfg_api_url("ftp://x/v1", out, sizeof out), -1);
    assert_int_equal(skcfg_api_url("127.0.0.1:8080/v1", out, sizeof out), -1);
    assert_int_equal(skcfg_api_url("http://", out, sizeof out), -1);
    assert_int_equal(skcfg_api_url("http:///v1", out, sizeof out), -1);
    assert_int_equal(skcfg_api_url("http://a b/v1", out, sizeof out), -1);
    assert_int_equal(skcfg_api_url("http://a/\x7f", out, sizeof out), -1);
    char small[8];
    assert_int_equal(skcfg_api_url("http://example", small, sizeof small), -1);
}

static void automount_parse(void **state) {
    (void)state;
    static skcfg_mount_t m[SKCFG_MOUNTS_MAX];
    size_t n;
    char err[128];
    const char *text = "# sk volumes\n\n/dev/sdf:/mnt/data\n  /dev/nvme1n1:/srv/a:b  \n/img/x.img:/mnt/with space";
    assert_int_equal(skcfg_parse_automount(text, strlen(text), m, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(m[0].device, "/dev/sdf");
    assert_string_equal(m[0].mountpoint, "/mnt/data");
    assert_string_equal(m[1].device, "/dev/nvme1n1");
    assert_string_equal(m[1].mountpoint, "/srv/a:b");
    assert_string_equal(m[2].mountpoint, "/mnt/with space");
    assert_int_equal(skcfg_parse_automount("", 0, m, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    const char *bad[] = {"/dev/sdf", "dev/sdf:/mnt", "/dev/sdf:mnt", "/dev/sdf /mnt", ":/mnt"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(skcfg_parse_automount(bad[i], strlen(bad[i]), m, &n, err, sizeof err), -1);
        assert_non_null(strstr(err, "line 1"));
    }
    const char *second = "/dev/a:/a\nnope\n";
    assert_int_equal(skcfg_parse_automount(second, strlen(second), m, &n, err, sizeof err), -1);
    assert_non_null(strstr(err, "line 2"));
    char many[SKCFG_MOUNTS_MAX * 16 + 64] = "";
    for (int i = 0; i <= SKCFG_MOUNTS_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "/dev/d%d:/m%d\n", i, i);
    assert_int_equal(skcfg_parse_automount(many, strlen(many), m, &n, err, sizeof err), -1);
}

static void automount_set(void **state) {
    (void)state;
    buf_t out;
    buf_init(&out, 0);
    const char *text = "# keep\n/dev/sdf:/old\n/dev/sdg:/g\n/dev/sdf1:/other\n";
    assert_int_equal(skcfg_automount_set(text, strlen(text), "/dev/sdf", "/mnt/new", &out), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    assert_string_equal(out.data, "# keep\n/dev/sdg:/g\n/dev/sdf1:/other\n/dev/sdf:/mnt/new\n");
    buf_free(&out);
    assert_int_equal(skcfg_automount_set("", 0, "/dev/sdf", "/m", &out), 0);
    assert_int_equal(buf_append(&out, "", 1), 0);
    assert_string_equal(out.data, "/dev/sdf:/m\n");
    buf_free(&out);
    assert_int_equal(skcfg_automount_set("/dev/a:/a", 9, "/dev/b", "/b", &out), 0); /* no final newline */
    assert_int_equal(buf_append(&out, "", 1), 0);
    assert_string_equal(out.data, "/dev/a:/a\n/dev/b:/b\n");
    buf_free(&out);
}

static void partition_names(void **state) {
    (void)state;
    char out[64];
    struct {
        const char *disk;
        unsigned n;
        const char *want;
    } cases[] = {
        {"/dev/sdf", 1, "/dev/sdf1"},
        {"/dev/sdf", 128, "/dev/sdf128"},
        {"/dev/xvdf", 1, "/dev/xvdf1"},
        {"/dev/nvme1n1", 1, "/dev/nvme1n1p1"},
        {"/dev/nvme0n1", 128, "/dev/nvme0n1p128"},
        {"/dev/mmcblk0", 2, "/dev/mmcblk0p2"},
        {"/dev/loop7", 1, "/dev/loop7p1"},
        {"/dev/vda", 3, "/dev/vda3"},
        {"nvme2n1", 1, "nvme2n1p1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(skdev_partition(cases[i].disk, cases[i].n, out, sizeof out), 0);
        assert_string_equal(out, cases[i].want);
    }
    assert_int_equal(skdev_partition("/dev/sdf", 0, out, sizeof out), -1);
    assert_int_equal(skdev_partition("/dev/sdf", 129, out, sizeof out), -1);
    assert_int_equal(skdev_partition("", 1, out, sizeof out), -1);
    assert_int_equal(skdev_partition("/dev/", 1, out, sizeof out), -1);
    assert_int_equal(skdev_partition("/dev/nvme1n1", 1, out, 14), -1); /* "/dev/nvme1n1p1" needs 15 */
    assert_int_equal(skdev_partition("/dev/nvme1n1", 1, out, 15), 0);
    assert_int_equal(skdev_mapper_name("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", out, sizeof out), 0);
    assert_string_equal(out, "sk-0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
    assert_int_equal(skdev_mapper_name("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", out, 20), -1);
}

static void mountinfo(void **state) {
    (void)state;
    const char *text = "22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/root rw\n"
                       "36 22 253:0 / /mnt/data rw,noatime shared:5 master:1 - ext4 /dev/mapper/sk-abc rw\n"
                       "37 22 8:1 / /mnt/with\\040space rw - xfs /dev/sd\\134x rw\n"
                       "38 22 253:1 / /mnt/stack rw - ext4 /dev/mapper/below rw\n"
                       "39 38 253:2 / /mnt/stack rw - ext4 /dev/dm-2 rw\n";
    char src[64];
    assert_int_equal(skmnt_source(text, strlen(text), "/mnt/data", src, sizeof src), 0);
    assert_string_equal(src, "/dev/mapper/sk-abc");
    assert_int_equal(skmnt_source(text, strlen(text), "/mnt/with space", src, sizeof src), 0);
    assert_string_equal(src, "/dev/sd\\x");
    assert_int_equal(skmnt_source(text, strlen(text), "/mnt/stack", src, sizeof src), 0);
    assert_string_equal(src, "/dev/dm-2"); /* the topmost */
    assert_int_equal(skmnt_source(text, strlen(text), "/mnt", src, sizeof src), 1);
    assert_int_equal(skmnt_source("", 0, "/", src, sizeof src), 1);
    const char *bad = "36 22 253:0 / /mnt/data rw shared:5\n"; /* no separator */
    assert_int_equal(skmnt_source(bad, strlen(bad), "/mnt/data", src, sizeof src), -1);
    char tiny[8];
    assert_int_equal(skmnt_source(text, strlen(text), "/mnt/data", tiny, sizeof tiny), -1);
}

static void identifiers(void **state) {
    (void)state;
    assert_true(skid_instance("i-0123456789abcdef0"));
    assert_true(skid_instance("i-0123abcd"));
    assert_false(skid_instance("i-0123456789ABCDEF0"));
    assert_false(skid_instance("i-0123456789abcdef"));
    assert_false(skid_instance("x-0123456789abcdef0"));
    assert_false(skid_instance("i-"));
    assert_true(skid_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
    assert_true(skid_uuid("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"));
    assert_false(skid_uuid("0f1e2d3c4b5a69788796a5b4c3d2e1f0"));
    assert_false(skid_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1fg"));
    assert_true(skid_tenant("vpc-0123456789abcdef0"));
    assert_false(skid_tenant(""));
    assert_false(skid_tenant("vpc 1"));
    assert_false(skid_tenant("vpc/1"));
}

static void files(void **state) {
    (void)state;
    char dir[] = "/tmp/test_agent_config-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], out[64], err[256];
    snprintf(path, sizeof path, "%s/api_url", dir);
    assert_int_equal(skcfg_write_file(path, "http://127.0.0.1:8080/v1\n", 25, 0644), 0);
    assert_int_equal(skcfg_read_line(dir, "api_url", out, sizeof out, err, sizeof err), 0);
    assert_string_equal(out, "http://127.0.0.1:8080/v1");
    assert_int_equal(skcfg_read_line(dir, "missing", out, sizeof out, err, sizeof err), 1);
    assert_int_equal(skcfg_write_file(path, "a\nb\n", 4, 0644), 0);
    assert_int_equal(skcfg_read_line(dir, "api_url", out, sizeof out, err, sizeof err), -1);
    assert_non_null(strstr(err, "one line"));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_int_not_equal(access(tmp, F_OK), 0); /* no leftover */
    unlink(path);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_line),      cmocka_unit_test(api_url),         cmocka_unit_test(automount_parse),
        cmocka_unit_test(automount_set), cmocka_unit_test(partition_names), cmocka_unit_test(mountinfo),
        cmocka_unit_test(identifiers),   cmocka_unit_test(files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
