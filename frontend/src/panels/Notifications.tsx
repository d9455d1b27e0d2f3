// Seed task 23.8: channels, recipients, event types, rate limits, and what was sent.
import { useEffect, useState } from "react";
import { useNotificationConfig, useNotificationHistory, useUpdateNotificationConfig } from "../api/hooks";
import { EVENT_TYPES, type EventType, type NotificationSettings } from "../api/types";
import { Badge, Card, Empty, ErrorBox, Pager, QueryView, Table } from "../components/ui";
import { dateTime, label } from "../format";

const WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
const DELIVERY_TONE: Record<string, "green" | "red" | "amber" | "slate"> = { delivered: "green", failed: "red", rate_limited: "amber", pending: "slate" };

export function NotificationsPanel() {
  const config = useNotificationConfig();
  return (
    <div className="grid gap-4 xl:grid-cols-5">
      <Card title="Notification preferences" className="xl:col-span-2" testId="notification-config">
        <QueryView query={config} what="notification settings">
          {(s) => <SettingsForm settings={s} />}
        </QueryView>
      </Card>
      <Card title="Recent notifications" className="xl:col-span-3" testId="notification-history">
        <HistoryTable />
      </Card>
    </div>
  );
}

function SettingsForm({ settings }: { settings: NotificationSettings }) {
  const save = useUpdateNotificationConfig();
  const [draft, setDraft] = useState(settings);
  const [recipients, setRecipients] = useState(settings.email_recipients.join(", "));
  useEffect(() => {
    setDraft(settings);
    setRecipients(settings.email_recipients.join(", "));
  }, [settings]);
  const set = <K extends keyof NotificationSettings>(key: K, value: NotificationSettings[K]) => setDraft({ ...draft, [key]: value });
  const toggleEvent = (e: EventType) =>
    set("notification_event_types", draft.notification_event_types.includes(e) ? draft.notification_event_types.filter((x) => x !== e) : [...draft.notification_event_types, e]);
  return (
    <form
      className="space-y-4 text-sm"
      onSubmit={(e) => {
        e.preventDefault();
        save.reset();
        const wanted: NotificationSettings = {
          ...draft,
          sms_phone_number: draft.sms_phone_number?.trim() || null,
          email_sender: draft.email_sender?.trim() || null,
          email_recipients: recipients.split(/[\s,;]+/).map((r) => r.trim()).filter(Boolean),
        };
        // Only what the owner changed: recipients taken from the environment stay there.
        const changes = Object.fromEntries(
          Object.entries(wanted).filter(([k, v]) => JSON.stringify(v) !== JSON.stringify(settings[k as keyof NotificationSettings])),
        ) as Partial<NotificationSettings>;
        if (Object.keys(changes).length > 0) save.mutate(changes);
      }}
    >
      <fieldset className="space-y-2">
        <legend className="mb-1 text-xs font-medium tracking-wider text-slate-400 uppercase">Channels</legend>
        <Toggle label="SMS" checked={draft.sms_enabled} onChange={(v) => set("sms_enabled", v)} />
        <label className="block text-xs text-slate-300">
          Phone number (E.164)
          <input className="input mt-1 block w-full" placeholder="+15551234567" value={draft.sms_phone_number ?? ""} onChange={(e) => set("sms_phone_number", e.target.value)} />
        </label>
        {draft.sns_topic_arn && <p className="text-xs text-slate-400">SNS topic: {draft.sns_topic_arn}</p>}
        <Toggle label="Email" checked={draft.email_enabled} onChange={(v) => set("email_enabled", v)} />
        <label className="block text-xs text-slate-300">
          Email recipients (comma separated)
          <input className="input mt-1 block w-full" placeholder="owner@example.com" value={recipients} onChange={(e) => setRecipients(e.target.value)} />
        </label>
        <label className="block text-xs text-slate-300">
          Sender
          <input className="input mt-1 block w-full" placeholder="engine@example.com" value={draft.email_sender ?? ""} onChange={(e) => set("email_sender", e.target.value)} />
        </label>
        <Toggle label="Webhook (URL set in the environment)" checked={draft.webhook_enabled} onChange={(v) => set("webhook_enabled", v)} />
        <Toggle label="Telegram (bot token and chat ids set in the environment)" checked={draft.telegram_enabled} onChange={(v) => set("telegram_enabled", v)} />
      </fieldset>
      <fieldset>
        <legend className="mb-1 text-xs font-medium tracking-wider text-slate-400 uppercase">Events</legend>
        <div className="grid grid-cols-2 gap-1">
          {EVENT_TYPES.map((e) => (
            <label key={e} className="flex items-center gap-2 text-xs text-slate-200">
              <input type="checkbox" className="accent-emerald-500" checked={draft.notification_event_types.includes(e)} onChange={() => toggleEvent(e)} />
              {label(e)}
            </label>
          ))}
        </div>
      </fieldset>
      <fieldset className="grid grid-cols-3 gap-2 text-xs text-slate-300">
        <legend className="col-span-3 mb-1 text-xs font-medium tracking-wider text-slate-400 uppercase">Limits and schedule</legend>
        <NumberField label="SMS / hour" value={draft.sms_rate_limit_per_hour} onChange={(v) => set("sms_rate_limit_per_hour", v)} />
        <NumberField label="Emails / hour" value={draft.email_rate_limit_per_hour} onChange={(v) => set("email_rate_limit_per_hour", v)} />
        <NumberField label="Webhooks / hour" value={draft.webhook_rate_limit_per_hour} onChange={(v) => set("webhook_rate_limit_per_hour", v)} />
        <NumberField label="Telegram / hour" value={draft.telegram_rate_limit_per_hour} onChange={(v) => set("telegram_rate_limit_per_hour", v)} />
        <label>
          Large trade P&L ($)
          <input type="number" min="0" step="any" className="input mt-1 block w-full" value={String(draft.large_trade_pnl_threshold)} onChange={(e) => set("large_trade_pnl_threshold", e.target.value)} />
        </label>
        <label>
          Daily summary (ET)
          <input type="time" className="input mt-1 block w-full" value={draft.daily_summary_time.slice(0, 5)} onChange={(e) => set("daily_summary_time", e.target.value)} />
        </label>
        <label>
          Weekly digest
          <select className="input mt-1 block w-full" value={draft.weekly_digest_weekday} onChange={(e) => set("weekly_digest_weekday", Number(e.target.value))}>
            {WEEKDAYS.map((d, i) => (
              <option key={d} value={i}>{d}</option>
            ))}
          </select>
        </label>
      </fieldset>
      <div className="flex items-center gap-3">
        <button className="btn-primary" type="submit" disabled={save.isPending}>
          {save.isPending ? "Saving…" : "Save"}
        </button>
        {save.isSuccess && <span className="text-xs text-emerald-400">Saved.</span>}
        <span className="text-xs text-slate-500">Needs the API token.</span>
      </div>
      {save.error && <ErrorBox error={save.error} what="the settings (nothing was saved)" />}
    </form>
  );
}

function Toggle(props: { label: string; checked: boolean; onChange: (v: boolean) => void }) {
  return (
    <label className="flex items-center gap-2 text-slate-200">
      <input type="checkbox" className="h-4 w-4 accent-emerald-500" checked={props.checked} onChange={(e) => props.onChange(e.target.checked)} />
      {props.label}
    </label>
  );
}

function NumberField(props: { label: string; value: number; onChange: (v: number) => void }) {
  return (
    <label>
      {props.label}
      <input type="number" min="0" step="1" className="input mt-1 block w-full" value={props.value} onChange={(e) => props.onChange(Number(e.target.value))} />
    </label>
  );
}

function HistoryTable() {
  const [offset, setOffset] = useState(0);
  const history = useNotificationHistory(offset);
  return (
    <QueryView query={history} what="notification history">
      {(page) =>
        page.items.length === 0 ? (
          <Empty>No notifications sent yet.</Empty>
        ) : (
          <>
            <Table head={["When", "Channel", "Event", "Status", "Message"]}>
              {page.items.map((n) => (
                <tr key={n.id} className="align-top">
                  <td className="px-2 py-2 whitespace-nowrap text-slate-400">{dateTime(n.created_at)}</td>
                  <td className="px-2 py-2 uppercase">{n.channel}</td>
                  <td className="px-2 py-2 whitespace-nowrap">{label(n.event_type)}</td>
                  <td className="px-2 py-2">
                    <Badge tone={DELIVERY_TONE[n.delivery_status] ?? "slate"}>{label(n.delivery_status)}</Badge>
                    {n.retry_count > 0 && <span className="ml-1 text-xs text-slate-500">{n.retry_count} retries</span>}
                  </td>
                  <td className="px-2 py-2 text-xs text-slate-300">
                    {n.message}
                    {n.error_message && <div className="text-rose-300">{n.error_message}</div>}
                  </td>
                </tr>
              ))}
            </Table>
            <Pager offset={offset} limit={page.limit} total={page.total} onChange={setOffset} />
          </>
        )
      }
    </QueryView>
  );
}
