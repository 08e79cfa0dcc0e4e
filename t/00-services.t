# The services of the test run answer as the other tests expect: Dovecot
# with alice's generated mailbox, reachable with her password and through
# the master user (both ways the module logs in), memcached, the SMTP sink
# storing messages byte for byte, and the test httpd itself.
use strict;
use warnings FATAL => 'all';

use Apache::Test qw(-withtestmore);
use Apache::TestRequest qw(GET);
use IO::Socket::INET ();
use JSON::PP ();
use Mail::IMAPClient ();
use Net::SMTP ();

my $svc = $ENV{DME_SERVICES_DIR};
plan tests => 20,
    need({ 'services come from t/run-apache-tests.sh' => defined $svc });

my $manifest = do {
    open my $fh, '<', "$svc/mailbox-alice.json" or die "manifest: $!";
    local $/;
    JSON::PP->new->utf8->decode(<$fh>);
};
my @msgs = @{ $manifest->{messages} };
is(scalar @msgs, 22, 'alice has 20 recent and 2 old generated messages');
is(scalar(grep { $_->{old} } @msgs), 2, 'two of them are older than 20 days');

sub imap {
    my (%login) = @_;
    return Mail::IMAPClient->new(Server => '127.0.0.1',
                                 Port => $ENV{DME_IMAP_PORT},
                                 Timeout => 10, %login);
}

# The newest message's Message-ID, as Dovecot sees it.
sub newest_message_id {
    my ($imap) = @_;
    $imap->select('INBOX') or return '';
    my ($uid) = sort { $b <=> $a } @{ $imap->messages || [] };
    my $id = $imap->get_header($uid, 'Message-ID') // '';
    return $id;
}

my $newest = $msgs[-1]{message_id};

my $alice = imap(User => 'alice', Password => 'alice-secret');
ok($alice, 'alice logs in with her password') or diag($@);
is($alice && $alice->message_count('INBOX'), 22, 'INBOX holds 22 messages');
is($alice && newest_message_id($alice), $newest,
   'the newest message is the last one generated');
my $caps = $alice ? join(' ', @{ $alice->capability || [] }) : '';
like($caps, qr/\bCONDSTORE\b/, 'CONDSTORE is offered');
like($caps, qr/\bMETADATA\b/, 'METADATA is offered');
$alice->logout if $alice;

my $master = imap(User => 'alice*dmemaster', Password => 'master-secret');
ok($master, 'alice*dmemaster logs in with the master password') or diag($@);
is($master && newest_message_id($master), $newest,
   '... and sees alice\'s mailbox');
$master->logout if $master;

# Mail::IMAPClient sends User as the authorisation id and Proxy as the
# authentication id.
my $authz = imap(User => 'alice', Proxy => 'dmemaster',
                 Password => 'master-secret', Authmechanism => 'PLAIN');
ok($authz, 'SASL PLAIN as dmemaster authorised as alice') or diag($@);
is($authz && $authz->message_count('INBOX'), 22, '... opens alice\'s INBOX');
$authz->logout if $authz;

ok(!imap(User => 'mallory*dmemaster', Password => 'master-secret'),
   'the master user cannot open a user Dovecot does not know');
ok(!imap(User => 'alice', Password => 'bob-secret'),
   'a wrong password is refused');

# memcached answers its protocol.
my $mc = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                               PeerPort => $ENV{DME_MC_PORT}, Timeout => 5);
ok($mc, 'memcached accepts a connection');
my $version = '';
if ($mc) {
    print $mc "version\r\n";
    $version = <$mc> // '';
    close $mc;
}
like($version, qr/^VERSION \d+\.\d+/, 'memcached answers "version"');

# The sink keeps the bytes exactly, with dot-stuffing undone.
my $body = "Subject: sink check\r\n\r\n.a line that starts with a dot\r\n"
         . "last line\r\n";
my $smtp = Net::SMTP->new('127.0.0.1', Port => $ENV{DME_SMTP_PORT},
                          Timeout => 10, Hello => 'test.localhost');
ok($smtp && $smtp->mail('sender@example.org')
   && $smtp->to('alice@example.org', 'bob@example.org')
   && $smtp->data($body) && $smtp->quit, 'the sink accepts a message');
my ($eml) = sort glob("$svc/smtp/*.eml");
my $got = do { local $/; open my $fh, '<:raw', $eml // '/nonexistent'; <$fh> }
    // '';
is($got, $body, 'the sink stored the message byte for byte');
(my $envfile = $eml // '') =~ s/\.eml$/.env/;
my $env = eval {
    open my $fh, '<', $envfile or die;
    local $/;
    JSON::PP->new->decode(<$fh>);
} || {};
is_deeply([$env->{mail_from}, $env->{rcpt_tos}],
          ['sender@example.org', ['alice@example.org', 'bob@example.org']],
          'the envelope was recorded');

# The test httpd answers on its loopback port.
my $res = GET('/no-such-file');
is($res->code, 404, 'httpd answers 404 for a missing file');
my $cfg = Apache::Test::config();
is($cfg->{vars}{servername}, '127.0.0.1', 'requests go to 127.0.0.1');
