import { Migration } from "@mikro-orm/migrations";

/** The audit log and its chain head (SQLite). */
export class Migration20251126150000_audit_log extends Migration {
  override async up(): Promise<void> {
    this.addSql("create table `audit_chain_head` (`id` integer not null, `seq` bigint not null, `hash` text not null, primary key (`id`));");
    // The head starts at seq 0 with the genesis hash (32 zero bytes), so seq 1 links to it.
    this.addSql(`insert into \`audit_chain_head\` (\`id\`, \`seq\`, \`hash\`) values (1, 0, '${"0".repeat(64)}');`);
    this.addSql(
      "create table `audit_event` (`seq` bigint not null, `id` text not null, `occurred_at` datetime not null, `recorded_at` datetime not null, `actor_kind` text not null, `actor_id` text not null, `actor_roles` text not null, `action` text not null, `resource_type` text not null, `resource_id` text not null, `outcome` text not null, `request_id` text not null, `details` text not null, `producer` text not null, `prev_hash` text not null, `hash` text not null, primary key (`seq`));",
    );
    this.addSql("create unique index `audit_event_id_unique` on `audit_event` (`id`);");
    this.addSql("create index `audit_event_action_seq_index` on `audit_event` (`action`, `seq`);");
    this.addSql("create index `audit_event_resource_seq_index` on `audit_event` (`resource_type`, `resource_id`, `seq`);");
    this.addSql("create index `audit_event_actor_seq_index` on `audit_event` (`actor_id`, `seq`);");
    this.addSql("create index `audit_event_occurred_at_index` on `audit_event` (`occurred_at`);");
  }
}
