/** The two buttons every filter form ends with. */
import { Button } from "./Button.js";

/** "Apply filters" submits the form it sits in; "Clear filters" calls `onClear`, which empties and applies at once. */
export function FilterActions({ onClear }: { readonly onClear: () => void }) {
  return (
    <div className="filter-actions">
      <Button type="submit" variant="primary">
        Apply filters
      </Button>
      <Button onClick={onClear}>Clear filters</Button>
    </div>
  );
}
