# The technical user with a SASL authorisation id (DMETechnicalLogin
# authzid under /dme-authzid) reaches the same mailbox as the
# "user*master" login under /dme.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/lib";
use Apache::Test qw(-withtestmore);
use DmeTest;

plan tests => 5;

my $imap = imap_as('bob', 'bob-secret');
append_mail($imap, 'INBOX', "For bob $_") for 1 .. 3;
$imap->logout;

my ($res, $c1) = enrol('bob', 'bob-secret', '/dme-authzid');
is($res->code, 201, 'enrol through the authzid login');
my (undef, $c2) = enrol('bob', 'bob-secret', '/dme');
$res = sync_req(client => $c1, base => '/dme-authzid', user => 'bob',
                password => 'bob-secret');
is($res->code, 200, 'import through the authzid login');
my $a = parse_sync($res->decoded_content);
$res = sync_req(client => $c2, user => 'bob', password => 'bob-secret');
my $b = parse_sync($res->decoded_content);
ok(scalar @{$a->{adds}} > 0, 'bob has mail in the window');
is_deeply([sort map { $_->{ref} } @{$a->{adds}}],
          [sort map { $_->{ref} } @{$b->{adds}}],
          'both logins see the same mails');
my $log = services() . '/dovecot/dovecot.log';
open my $fh, '<', $log or die;
ok((grep { /Master user logging in as bob/ } <$fh>),
   'Dovecot saw the master user act for bob');
