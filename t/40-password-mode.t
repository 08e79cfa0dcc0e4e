# DMEMailAccess password: the user's own password reaches the mailbox and
# is stored sealed; a refused password is 401, a refused technical user
# is 503.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Apache::Test qw(-withtestmore);
use DmeTest;

plan tests => 14;

my ($res, $client) = enrol('carol', 'carol-secret', '/dme-pw');
is($res->code, 201, 'carol enrols with her own password');
ok($client, 'and gets a client id');

my $imap = imap_as('carol', 'carol-secret');
append_mail($imap, 'INBOX', 'For carol');
$res = sync_req(client => $client, base => '/dme-pw', user => 'carol',
                password => 'carol-secret');
is($res->code, 200, 'carol imports through her own login');
my $s = parse_sync($res->decoded_content);
ok((grep { $_->{subject} eq 'For carol' } @{$s->{adds}}), 'and sees her mail');

# The stored password is sealed, never plain.
my $state = $ENV{DME_STATE} || "$ENV{DME_REPO}/t/state";
my $db = "$state/dme.sqlite";
my $sealed = `sqlite3 '$db' "SELECT password_sealed FROM users WHERE name='carol'"`;
chomp $sealed;
like($sealed, qr/^v1:[A-Za-z0-9+\/=]+$/, 'the stored password is sealed');
unlike($sealed, qr/carol-secret/, 'and does not contain the password');
my $mode = (stat "$state/dme-password.key")[2] & 07777;
is(sprintf('%04o', $mode), '0600', 'the key file is 0600');
my $log = join '', error_log_lines(qr/./);
unlike($log, qr/carol-secret|master-secret/, 'no password in the error log');

# mallory passes Apache but has no mailbox: in password mode the client
# must ask the user again (401), with the technical user it is 503.
($res) = enrol('mallory', 'mallory-secret', '/dme-pw');
is($res->code, 401, 'refused own password: 401');
like($res->decoded_content, qr/code="mail-login-refused"/, 'says so');
($res) = enrol('mallory', 'mallory-secret', '/dme');
is($res->code, 503, 'refused technical login: 503');
ok(scalar(error_log_lines(qr/DME10011/)) >= 1,
   'the refused technical user is logged');

# carol's stored password follows a change of the one Apache accepts;
# the user row is kept, the seal changes.
$res = sync_req(client => $client, base => '/dme-pw', user => 'carol',
                password => 'carol-secret', key => $s->{key});
is($res->code, 200, 'a later sync works');
my $again = `sqlite3 '$db' "SELECT password_sealed FROM users WHERE name='carol'"`;
chomp $again;
is($again, $sealed, 'an unchanged password is not sealed again');
$imap->logout;
