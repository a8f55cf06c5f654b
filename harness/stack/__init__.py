"""The local stack behind `accord up`: emulator, provisioning, services, SMTP sink, docs."""
