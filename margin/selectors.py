"""Margin reads: balances and loans of a margin account, its margin level and state, what
may be borrowed or transferred out (services write, selectors read).

Formulas (docs/margin.md, "Accounts, loans, interest, states, API"), every value in USDT
through :mod:`margin.pricing`, exact Decimal arithmetic:

    total asset value  TAV = Σ_asset (free + locked) × price
    collateral value   CV  = Σ_asset (free + locked) × price × collateral_ratio(asset)
    liabilities        L   = Σ_asset (principal + interest) × price
    equity             E   = TAV − L
    margin level       ML  = TAV / L        (None without debt)
    collateral level   CML = CV / L

States, per tier (settings KK99["MARGIN"]["TIERS"]), first match wins, a level AT a
threshold being in the worse state (Binance's "1.1 < ML ≤ 1.3"):

    LIQUIDATION       ML  ≤ liquidation_at          (TAV ≤ liquidation_at × L)
    MARGIN_CALL       ML  ≤ margin_call_at
    NO_BORROW         CML ≤ borrow_above
    NO_TRANSFER_OUT   CML ≤ transfer_out_above
    NORMAL            otherwise, or no debt

Comparisons are done by multiplication (TAV ≤ k × L), never on a rounded level. The
maintenance requirement is an amount of equity: (liquidation_at − 1) × L for the margin
level; the SPAN requirement (``margin.span``) for an account with ``portfolio_margin``, whose
states are then judged on E against requirement × (threshold / liquidation_at).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal, localcontext

from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Sum
from django.utils import timezone

from kk99.conf import kk99_setting
from margin import pricing
from margin.models import BorrowCap, InterestRate, Loan, LoanEvent, MarginAccount, MarginAsset, MarginState as MarginStateKind
from wallets.models import Account, AccountPurpose, Asset, Balance, SystemAccountKind
from wallets.services import LEDGER_DECIMAL_CONTEXT

try:  # the span helper's module (issue 12); until it is merged, portfolio margin falls back
    import margin.whatif as whatif_module
except ModuleNotFoundError as exc:  # pragma: no cover — present once the span branch is merged
    if exc.name != "margin.whatif":
        raise
    whatif_module = None

LEVEL_QUANTUM = Decimal("0.00000001")


# --- accounts ---------------------------------------------------------------------------------


def margin_account_get(*, user: AbstractBaseUser, isolated_symbol: str | None = None) -> MarginAccount | None:
    """The user's cross (``isolated_symbol`` None) or isolated margin account, or None."""
    purpose = AccountPurpose.ISOLATED if isolated_symbol else AccountPurpose.MARGIN
    return (
        MarginAccount.objects.select_related("account")
        .filter(account__user_id=user.pk, account__purpose=purpose, account__isolated_symbol=isolated_symbol or "")
        .first()
    )


def margin_accounts_of(*, user: AbstractBaseUser) -> list[MarginAccount]:
    return list(MarginAccount.objects.select_related("account").filter(user_id=user.pk).order_by("id"))


def tier_thresholds(tier: int) -> dict:
    tiers = kk99_setting("MARGIN")["TIERS"]
    return tiers.get(tier) or tiers[kk99_setting("MARGIN")["DEFAULT_TIER"]]


# --- the state --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AssetLine:
    """One asset of a margin account: its balance, its loan, and its USDT price."""

    asset: Asset
    free: Decimal
    locked: Decimal
    borrowed: Decimal
    interest: Decimal
    price: Decimal | None

    @property
    def total(self) -> Decimal:
        return self.free + self.locked

    @property
    def owed(self) -> Decimal:
        return self.borrowed + self.interest

    @property
    def net(self) -> Decimal:
        return self.total - self.owed


@dataclass(frozen=True)
class MarginState:
    """The margin picture of one account at some prices (see the module docstring)."""

    account_id: int
    tier: int
    portfolio_margin: bool
    total_asset_value: Decimal
    collateral_value: Decimal
    liabilities: Decimal
    equity: Decimal
    level: Decimal | None
    collateral_level: Decimal | None
    maintenance_requirement: Decimal
    state: MarginStateKind
    thresholds: dict = field(default_factory=dict)
    lines: tuple[AssetLine, ...] = ()

    @property
    def may_borrow(self) -> bool:
        return self.state in (MarginStateKind.NORMAL, MarginStateKind.NO_TRANSFER_OUT)

    @property
    def may_transfer_out(self) -> bool:
        return self.state == MarginStateKind.NORMAL

    def line(self, symbol: str) -> AssetLine | None:
        return next((x for x in self.lines if x.asset.symbol == symbol), None)

    def positions(self) -> dict[str, Decimal]:
        """Net quantity per asset (+ long, − borrowed): what ``margin.span`` takes."""
        return {x.asset.symbol: x.net for x in self.lines if x.net}

    def prices(self) -> dict[str, Decimal]:
        return {x.asset.symbol: x.price for x in self.lines if x.price is not None}


def account_lines(account: Account, *, prices: Mapping[str, Decimal] | None = None) -> list[AssetLine]:
    """Balances and loans of ``account``, one line per asset it holds or owes (two queries, one
    for the markets of the assets not in ``prices``, and their mark prices)."""
    balances = {b.asset_id: b for b in Balance.objects.filter(account=account).select_related("asset")}
    loans = {ln.asset_id: ln for ln in Loan.objects.filter(account=account).select_related("asset")}
    symbols = {x.asset.symbol for x in [*balances.values(), *loans.values()]}
    known = dict(prices or {})
    known.update(pricing.prices_usdt(symbols - known.keys()))
    lines = []
    for asset_id in sorted(balances.keys() | loans.keys()):
        b, ln = balances.get(asset_id), loans.get(asset_id)
        asset = b.asset if b is not None else ln.asset
        free, locked = (b.available, b.locked) if b is not None else (Decimal(0), Decimal(0))
        borrowed, interest = (ln.principal, ln.interest) if ln is not None else (Decimal(0), Decimal(0))
        if not (free or locked or borrowed or interest):
            continue
        price = known.get(asset.symbol)
        lines.append(AssetLine(asset=asset, free=free, locked=locked, borrowed=borrowed, interest=interest, price=price))
    return lines


def collateral_ratios(asset_ids) -> dict[int, Decimal]:
    """Collateral ratio per asset id; 0 for an asset without margin terms (fail closed)."""
    ratios = dict(MarginAsset.objects.filter(asset_id__in=list(asset_ids)).values_list("asset_id", "collateral_ratio"))
    return {a: ratios.get(a, Decimal(0)) for a in asset_ids}


def margin_state(
    account: MarginAccount | Account,
    *,
    prices: Mapping[str, Decimal] | None = None,
    lines: list[AssetLine] | None = None,
) -> MarginState:
    """The margin state of ``account`` (a MarginAccount or its ledger Account) at current
    prices (``margin.pricing``), or at ``prices`` (USDT per unit by symbol) where given.
    ``lines`` replaces the account's balances and loans (what-if)."""
    margin = account if isinstance(account, MarginAccount) else MarginAccount.objects.select_related("account").get(account=account)
    if lines is None:
        lines = account_lines(margin.account, prices=prices)
    ratios = collateral_ratios([x.asset.pk for x in lines])
    thresholds = tier_thresholds(margin.tier)
    with localcontext(LEDGER_DECIMAL_CONTEXT):
        tav = sum((x.total * x.price for x in lines if x.price is not None), Decimal(0))
        cv = sum((x.total * x.price * ratios[x.asset.pk] for x in lines if x.price is not None), Decimal(0))
        # A debt in an asset without a price cannot be valued: it makes the account liquidatable
        # only through the priced part; borrowing refuses unpriced assets, so it cannot arise there.
        liabilities = sum((x.owed * x.price for x in lines if x.price is not None), Decimal(0))
        equity = tav - liabilities
        level = (tav / liabilities).quantize(LEVEL_QUANTUM, rounding=ROUND_DOWN) if liabilities > 0 else None
        collateral_level = (cv / liabilities).quantize(LEVEL_QUANTUM, rounding=ROUND_DOWN) if liabilities > 0 else None
        liq = Decimal(thresholds["liquidation_at"])
        requirement = (liq - 1) * liabilities
        pm = margin.portfolio_margin and whatif_module is not None and liabilities > 0
        if pm:
            # The lines just read (at ``prices`` when given): the requirement is at the same prices.
            requirement = whatif_module.account_requirement(margin, lines=lines, detail=False).requirement
        state = _state(tav=tav, cv=cv, liabilities=liabilities, equity=equity, requirement=requirement, thresholds=thresholds, portfolio=pm)
    return MarginState(
        account_id=margin.account_id, tier=margin.tier, portfolio_margin=margin.portfolio_margin,
        total_asset_value=tav, collateral_value=cv, liabilities=liabilities, equity=equity, level=level,
        collateral_level=collateral_level, maintenance_requirement=requirement, state=state,
        thresholds=thresholds, lines=tuple(lines),
    )


def _state(*, tav, cv, liabilities, equity, requirement, thresholds, portfolio: bool) -> MarginStateKind:
    if liabilities <= 0:
        return MarginStateKind.NORMAL
    liq = Decimal(thresholds["liquidation_at"])
    if portfolio:
        # The same ladder, scaled: a threshold k of the margin level becomes equity against
        # requirement × k / liquidation_at (liquidation when equity < requirement).
        if equity < requirement:
            return MarginStateKind.LIQUIDATION
        for key, kind in (("margin_call_at", MarginStateKind.MARGIN_CALL), ("borrow_above", MarginStateKind.NO_BORROW), ("transfer_out_above", MarginStateKind.NO_TRANSFER_OUT)):
            if equity * liq <= requirement * Decimal(thresholds[key]):
                return kind
        return MarginStateKind.NORMAL
    if tav <= liq * liabilities:
        return MarginStateKind.LIQUIDATION
    if tav <= Decimal(thresholds["margin_call_at"]) * liabilities:
        return MarginStateKind.MARGIN_CALL
    if cv <= Decimal(thresholds["borrow_above"]) * liabilities:
        return MarginStateKind.NO_BORROW
    if cv <= Decimal(thresholds["transfer_out_above"]) * liabilities:
        return MarginStateKind.NO_TRANSFER_OUT
    return MarginStateKind.NORMAL


# --- what may be done -------------------------------------------------------------------------


def interest_rate(*, asset: Asset, tier: int, at=None) -> InterestRate | None:
    """The rate in force for ``asset`` and ``tier`` at ``at`` (now by default)."""
    at = at or timezone.now()
    return InterestRate.objects.filter(asset=asset, tier=tier, effective_from__lte=at).order_by("-effective_from").first()


def pool_available(asset: Asset) -> Decimal:
    """What the lending pool still holds of ``asset``."""
    row = Balance.objects.filter(account__system_kind=SystemAccountKind.LENDING_POOL, asset=asset).values_list("available", flat=True).first()
    return row or Decimal(0)


@dataclass(frozen=True)
class PoolLine:
    """The lending pool in one asset: what it holds, what is lent out (loan principal) and
    the interest borrowers owe it."""

    asset: str
    available: Decimal
    lent: Decimal
    interest_owed: Decimal


def pool_overview() -> list[PoolLine]:
    """The lending pool per asset that it holds or has lent, by symbol (the back office's
    pool view; ``ledger_audit`` proves lent = Σ loans)."""
    held = dict(Balance.objects.filter(account__system_kind=SystemAccountKind.LENDING_POOL).values_list("asset__symbol", "available"))
    loans = {r["asset__symbol"]: r for r in Loan.objects.values("asset__symbol").annotate(p=Sum("principal"), i=Sum("interest"))}
    return [
        PoolLine(asset=s, available=held.get(s) or Decimal(0), lent=(loans.get(s) or {}).get("p") or Decimal(0), interest_owed=(loans.get(s) or {}).get("i") or Decimal(0))
        for s in sorted(set(held) | set(loans))
    ]


def borrow_cap(*, asset: Asset, tier: int) -> Decimal | None:
    return BorrowCap.objects.filter(asset=asset, tier=tier).values_list("max_borrow", flat=True).first()


@dataclass(frozen=True)
class MaxBorrowable:
    amount: Decimal  # min of the three limits below, floored to the asset's precision
    by_collateral: Decimal
    by_cap: Decimal
    by_pool: Decimal


def max_borrowable(margin: MarginAccount, asset: Asset, *, state: MarginState | None = None) -> MaxBorrowable:
    """How much of ``asset`` the account may still borrow:

    * collateral: borrowing x (USDT value X = x × price) adds X to both the assets (the cash
      sits in the account, counted at the asset's own collateral ratio r) and the liabilities;
      the collateral level must stay above the tier's ``borrow_above`` k:
      (CV + r·X) / (L + X) ≥ k  ⇔  X ≤ (CV − k·L) / (k − r);
    * the tier's cap for the asset minus what is owed in it;
    * what the pool holds.
    Zero when the asset is not borrowable, has no price, or the state forbids borrowing."""
    quantum = Decimal(1).scaleb(-asset.precision)
    zero = MaxBorrowable(Decimal(0), Decimal(0), Decimal(0), Decimal(0))
    terms = MarginAsset.objects.filter(asset=asset).first()
    price = pricing.asset_price_usdt(asset)
    if terms is None or not terms.borrowable or not price:
        return zero
    state = state or margin_state(margin)
    if state.liabilities > 0 and not state.may_borrow:
        return zero
    with localcontext(LEDGER_DECIMAL_CONTEXT):
        k = Decimal(state.thresholds["borrow_above"])
        r = terms.collateral_ratio
        room = state.collateral_value - k * state.liabilities
        by_collateral = max(Decimal(0), room / (k - r) / price) if k > r else Decimal(0)
        line = state.line(asset.symbol)
        owed = line.owed if line else Decimal(0)
        cap = borrow_cap(asset=asset, tier=margin.tier)
        by_cap = max(Decimal(0), cap - owed) if cap is not None else Decimal(0)
        by_pool = pool_available(asset)
        amount = min(by_collateral, by_cap, by_pool).quantize(quantum, rounding=ROUND_DOWN)
    return MaxBorrowable(amount, by_collateral.quantize(quantum, rounding=ROUND_DOWN), by_cap, by_pool)


def max_transferable(margin: MarginAccount, asset: Asset, *, state: MarginState | None = None) -> Decimal:
    """How much of ``asset`` may leave the margin account: its free balance without debt;
    with debt, the part that keeps the collateral level above ``transfer_out_above`` k
    (taking x of value X at ratio r out: (CV − r·X) / L ≥ k ⇔ X ≤ (CV − k·L) / r); zero unless
    the state is NORMAL."""
    quantum = Decimal(1).scaleb(-asset.precision)
    state = state or margin_state(margin)
    line = state.line(asset.symbol)
    free = line.free if line else Decimal(0)
    if state.liabilities <= 0:
        return free
    if not state.may_transfer_out:
        return Decimal(0)
    with localcontext(LEDGER_DECIMAL_CONTEXT):
        ratio = collateral_ratios([asset.pk])[asset.pk]
        price = line.price if line else None
        if not ratio or not price:
            return free  # counts for nothing as collateral: taking it out changes nothing
        k = Decimal(state.thresholds["transfer_out_above"])
        room = (state.collateral_value - k * state.liabilities) / (ratio * price)
        return max(Decimal(0), min(free, room)).quantize(quantum, rounding=ROUND_DOWN)


# --- history ----------------------------------------------------------------------------------


def loan_events_for(*, account: Account, kinds=None, asset: Asset | None = None):
    qs = LoanEvent.objects.filter(loan__account=account).select_related("loan__asset", "journal_event").order_by("-id")
    if kinds:
        qs = qs.filter(kind__in=list(kinds))
    if asset is not None:
        qs = qs.filter(loan__asset=asset)
    return qs
