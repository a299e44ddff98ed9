/* A test leaf certificate for the ACME client's revokeCert and renewalInfo
 * paths (tests/unit/test_acme.c, tests/fuzz/fuzz_acme.c). */
#ifndef SKD_TESTS_ACME_TEST_CERT_H
#define SKD_TESTS_ACME_TEST_CERT_H

/* A certificate with an authority key id and the serial 0x87654321 (top bit
 * set: the id's serial gets a leading zero octet). */
static const char ACME_TEST_CERT_PEM[] =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBYzCCAQigAwIBAgIFAIdlQyEwCgYIKoZIzj0EAwIwDjEMMAoGA1UEAwwDYXJp\n"
    "MB4XDTI2MTEyMjE4MTEzOVoXDTM2MTExOTE4MTEzOVowDjEMMAoGA1UEAwwDYXJp\n"
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEjCLffoniQQNvsVOxwcmznICqKHKn\n"
    "DWx2cRWtxi/WGeU0kYwFA8Wt8aUdTRkIA0AhRfF5bskpP403FBTJTOkSCKNTMFEw\n"
    "HQYDVR0OBBYEFOkWrDekHnET1XQNAHF9NPFvpDrSMA8GA1UdEwEB/wQFMAMBAf8w\n"
    "HwYDVR0jBBgwFoAU6RasN6QecRPVdA0AcX008W+kOtIwCgYIKoZIzj0EAwIDSQAw\n"
    "RgIhALBS/XUU46Dw/W51sZOlWDenuH8nIGfROo2dmJVlCXhUAiEAxGF6rs2xt+DQ\n"
    "P6Pl8XKiyY+G2jVQGYVk2GvR3mcA86E=\n"
    "-----END CERTIFICATE-----\n";

#endif
