// Seed task 23.9: the Trading page's panels as routes. Hash history: deep links work however
// the files are served (the engine's StaticFiles at "/", nginx under "/trading/").
import { createHashHistory, createRootRoute, createRoute, createRouter, Link, Outlet } from "@tanstack/react-router";
import { useTradingStatus } from "./api/hooks";
import { API_BASE } from "./api/client";
import { TokenControl } from "./components/TokenControl";
import { Badge } from "./components/ui";
import { engineState, OverviewPanel, tradingAccount } from "./panels/Overview";
import { PortfolioPanel } from "./panels/Portfolio";
import { TradesPanel } from "./panels/Trades";
import { DecisionsPanel } from "./panels/Decisions";
import { PerformancePanel } from "./panels/Performance";
import { BacktestPanel } from "./panels/Backtest";
import { OptimizePanel } from "./panels/Optimize";
import { MicroPanel } from "./panels/Micro";
import { NotificationsPanel } from "./panels/Notifications";

const TABS = [
  { to: "/", label: "Overview", component: OverviewPanel },
  { to: "/portfolio", label: "Portfolio", component: PortfolioPanel },
  { to: "/trades", label: "Trades", component: TradesPanel },
  { to: "/decisions", label: "Decisions", component: DecisionsPanel },
  { to: "/performance", label: "Performance", component: PerformancePanel },
  { to: "/backtest", label: "Backtesting", component: BacktestPanel },
  { to: "/optimize", label: "Optimize", component: OptimizePanel },
  { to: "/micro", label: "Micro-trading", component: MicroPanel },
  { to: "/notifications", label: "Notifications", component: NotificationsPanel },
] as const;

function HeaderState() {
  const status = useTradingStatus();
  if (status.isPending) return <Badge tone="slate">connecting…</Badge>;
  if (status.isError) return <Badge tone="red" testId="header-state">engine unreachable</Badge>;
  const state = engineState(status.data);
  const account = tradingAccount(status.data);
  return (
    <>
      <Badge tone={account.tone} testId="header-account">
        {account.text}
      </Badge>
      <Badge tone={state.tone} testId="header-state">
        {state.text}
      </Badge>
    </>
  );
}

function Layout() {
  return (
    <div className="min-h-screen">
      <header className="sticky top-0 z-10 border-b border-slate-800 bg-slate-950/90 backdrop-blur">
        <div className="mx-auto flex max-w-screen-2xl flex-wrap items-center gap-x-6 gap-y-2 px-4 py-3">
          <div className="flex items-center gap-2">
            <svg viewBox="0 0 16 16" className="h-6 w-6">
              <rect width="16" height="16" rx="3" fill="#10b981" />
              <path d="M3 11l3-3 2 2 5-5" stroke="white" strokeWidth="1.8" fill="none" />
            </svg>
            <span className="font-semibold text-slate-100">Trading engine</span>
            <HeaderState />
          </div>
          <nav className="flex flex-1 flex-wrap gap-1 text-sm">
            {TABS.map((t) => (
              <Link
                key={t.to}
                to={t.to}
                data-testid={`tab-${t.to === "/" ? "overview" : t.to.slice(1)}`}
                className="rounded-md px-2.5 py-1.5 text-slate-400 hover:bg-slate-800 hover:text-slate-100"
                activeProps={{ className: "bg-slate-800 text-slate-100" }}
                activeOptions={{ exact: true }}
              >
                {t.label}
              </Link>
            ))}
          </nav>
          <TokenControl />
        </div>
      </header>
      <main className="mx-auto max-w-screen-2xl px-4 py-5">
        <Outlet />
      </main>
      <footer className="mx-auto max-w-screen-2xl px-4 pb-6 text-xs text-slate-600">API: {API_BASE} · figures refresh on their own</footer>
    </div>
  );
}

const rootRoute = createRootRoute({
  component: Layout,
  notFoundComponent: () => <p className="text-slate-400">No such page. <Link to="/" className="text-sky-400">Overview</Link></p>,
});
const routes = TABS.map((t) => createRoute({ getParentRoute: () => rootRoute, path: t.to, component: t.component }));

export const router = createRouter({ routeTree: rootRoute.addChildren(routes), history: createHashHistory() });

declare module "@tanstack/react-router" {
  interface Register {
    router: typeof router;
  }
}
